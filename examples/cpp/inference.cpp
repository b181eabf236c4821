// Runs a .pt2 package written by aitune_trt_aot (TensorRT engines + AOTInductor code) from C++.
//
// Usage: inference MODEL.pt2 CASES.pt
//   CASES.pt is a TorchScript module whose attributes hold, for each case i = 0..n-1, the package's
//   flat input tensors `input_i_0 ... input_i_{arity_i - 1}` and the expected first output `expected_i`
//   (examples/pt2_cases.py; `python examples/deploy_pt2.py MODEL.pt2 --write-cases CASES.pt` writes one). For every case the program runs the package and prints the batch size, the output
//   shape and the largest difference from the expected output; then it calls the package with a
//   batch one larger than the largest case to show the range check.
#include <dlfcn.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdint>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

// "1,64" -> {1, 64}
static std::vector<int64_t> parse_sizes(const std::string& text) {
  std::vector<int64_t> sizes;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) sizes.push_back(std::stoll(item));
  return sizes;
}

// Refuses inputs outside the shapes the package was compiled for, before the engines see them. The package's
// metadata holds, per flat input i, "aitune_trt_aot.input_<i>.min" and ".max": a size per axis, -1 where
// unchecked or unbounded. (AOTInductor's own check, AOTI_RUNTIME_CHECK_INPUTS=1, is not used: it takes a batch
// axis compiled for 1..N as 2..N, since torch.export assumes dynamic sizes are not 0 or 1.)
static void check_inputs(const std::unordered_map<std::string, std::string>& metadata,
                         const std::vector<torch::Tensor>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string key = "aitune_trt_aot.input_" + std::to_string(i);
    const auto low = metadata.find(key + ".min");
    const auto high = metadata.find(key + ".max");
    if (low == metadata.end() || high == metadata.end()) continue;
    const std::vector<int64_t> lows = parse_sizes(low->second), highs = parse_sizes(high->second);
    if (static_cast<int64_t>(lows.size()) != inputs[i].dim()) {
      throw std::invalid_argument("input " + std::to_string(i) + " has " + std::to_string(inputs[i].dim()) +
                                  " dimensions, compiled for " + std::to_string(lows.size()));
    }
    for (size_t axis = 0; axis < lows.size(); ++axis) {
      const int64_t size = inputs[i].size(axis);
      if ((lows[axis] >= 0 && size < lows[axis]) || (highs[axis] >= 0 && size > highs[axis])) {
        throw std::out_of_range("input " + std::to_string(i) + ": size " + std::to_string(size) + " on axis " +
                                std::to_string(axis) + ", compiled for " + std::to_string(lows[axis]) + ".." +
                                (highs[axis] >= 0 ? std::to_string(highs[axis]) : std::string()));
      }
    }
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt2 CASES.pt\n";
    return 2;
  }
  // Torch-TensorRT's runtime library registers the TensorRT engine class the package uses. It is opened here with
  // RTLD_LOCAL, as Python's torch.ops.load_library does (the path the Python tests run), instead of being linked.
  if (dlopen(TORCHTRT_RUNTIME_PATH, RTLD_NOW | RTLD_LOCAL) == nullptr) {
    std::cerr << "error: cannot load Torch-TensorRT's runtime library: " << dlerror() << "\n";
    return 1;
  }
  try {
    torch::NoGradGuard no_grad;
    // run_single_threaded=true, one runner, device 0: the single-threaded runner does no CUDA-event query or sync
    // per call (the thread-safe one does), so a call can be captured in a CUDA graph; it is not thread-safe: a server
    // calling from several threads takes one loader per thread, or a mutex around run (aitune_trt_aot's Python
    // load_pt2 locks). Pass false for the thread-safe runner (slower per call, cannot be captured).
    torch::inductor::AOTIModelPackageLoader loader(argv[1], "model", /*run_single_threaded=*/true, 1, 0);
    const std::unordered_map<std::string, std::string> metadata = loader.get_metadata();
    torch::jit::Module cases = torch::jit::load(argv[2]);
    const auto count = cases.attr("count").toInt();
    std::vector<torch::Tensor> inputs;
    for (int64_t i = 0; i < count; ++i) {
      const std::string id = std::to_string(i);
      inputs.clear();
      for (int64_t j = 0; j < cases.attr("arity_" + id).toInt(); ++j) {
        inputs.push_back(cases.attr("input_" + id + "_" + std::to_string(j)).toTensor().to(torch::kCUDA));
      }
      torch::Tensor expected = cases.attr("expected_" + id).toTensor().to(torch::kCUDA);
      check_inputs(metadata, inputs);
      for (int repeat = 0; repeat < 3; ++repeat) {
        std::vector<torch::Tensor> outputs = loader.run(inputs);
        double error = (outputs.at(0).to(torch::kFloat) - expected.to(torch::kFloat)).abs().max().item<double>();
        std::cout << "batch " << inputs.at(0).size(0) << " call " << repeat + 1 << ": output "
                  << outputs.at(0).sizes() << " max abs error vs expected " << error << std::endl;
      }
    }
    // The last case's inputs with the batch axis one past the compiled maximum.
    const int64_t too_big_batch = cases.attr("max_batch").toInt() + 1;
    std::vector<torch::Tensor> too_big;
    for (const torch::Tensor& input : inputs) {
      std::vector<int64_t> shape = input.sizes().vec();
      shape[0] = too_big_batch;
      too_big.push_back(torch::zeros(shape, input.options()));
    }
    try {
      check_inputs(metadata, too_big);
      loader.run(too_big);
      std::cout << "batch " << too_big_batch << ": ran (NOT refused)" << std::endl;
    } catch (const std::exception& error) {
      std::string message = error.what();
      std::cout << "batch " << too_big_batch << ": refused: " << message.substr(0, message.find('\n')) << std::endl;
    }
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
