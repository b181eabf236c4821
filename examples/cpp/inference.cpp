// Runs a .pt2 package written by aitune_trt_aot (TensorRT engines + AOTInductor code) from C++.
//
// Usage: inference MODEL.pt2 CASES.pt [--cuda-graphs] [--time N]
//   CASES.pt is a TorchScript module whose attributes hold, for each case i = 0..n-1, the package's
//   flat input tensors `input_i_0 ... input_i_{arity_i - 1}` and the expected first output `expected_i`
//   (examples/pt2_cases.py; `python examples/deploy_pt2.py MODEL.pt2 --write-cases CASES.pt` writes one). For every case the program runs the package and prints the batch size, the output
//   shape and the largest difference from the expected output; then it calls the package with a
//   batch one larger than the largest case to show the range check.
//   --cuda-graphs: replay one CUDA graph per input shape, captured at the shape's first call, as aitune_trt_aot's
//     load_pt2 does by default (Python: aitune_trt_aot/cuda_graphs.py); on TensorRT-RTX the engines first get the
//     kernel specialization the package records ("eager" for "auto": a graph keeps the kernels it captured).
//   --time N: then, for each case's shapes, the median of N synchronised calls after 20 unmeasured ones.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <dlfcn.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
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

// The kernel specialization the package records (metadata "aitune_trt_aot.kernel_specialization"), as TensorRT-RTX's
// DynamicShapesKernelSpecializationStrategy value for calls captured in CUDA graphs: "auto" and "eager" give 1
// (eager), "none" 2; -1 for "lazy", whose kernels change after a capture (run those packages without graphs).
static int64_t captured_kernel_strategy(const std::unordered_map<std::string, std::string>& metadata) {
  const auto found = metadata.find("aitune_trt_aot.kernel_specialization");
  const std::string choice = found == metadata.end() ? "auto" : found->second;
  if (choice == "lazy") return -1;
  return choice == "none" ? 2 : 1;
}

// Gives every Torch-TensorRT engine of the package the kernel strategy through the engine class's TorchBind method
// update_runtime_settings(kernel_strategy, cuda_graph_strategy, runtime_cache): TensorRT-RTX's own CUDA graphs off,
// no kernel cache. Before the first call: an engine reads its settings when it creates its execution context.
// Returns how many engines got them.
static int give_kernel_strategy(const torch::inductor::AOTIModelPackageLoader& loader, int64_t strategy) {
  int engines = 0;
  for (const auto& entry : loader.get_custom_objs()) {
    if (!entry.second.isObject()) continue;
    torch::jit::Object engine(entry.second.toObject());
    const std::string type = engine.type()->name()->qualifiedName();
    if (type.size() < 15 || type.compare(type.size() - 15, 15, "tensorrt.Engine") != 0) continue;
    engine.run_method("update_runtime_settings", strategy, int64_t{0}, c10::IValue());
    ++engines;
  }
  return engines;
}

// Calls the package through one CUDA graph per input signature (shapes and dtypes), captured at its first call after
// two warm-up calls; inputs are copied into the graph's buffers and outputs copied out, so a result stays valid after
// the next call. Capture needs a stream other than the default one: the warm-up calls and the capture run on a stream
// of the runner's own, between two device-wide synchronisations (once per signature); copies and replays run on the
// caller's stream. Single-threaded, as the runner it captures.
class GraphRunner {
 public:
  explicit GraphRunner(torch::inductor::AOTIModelPackageLoader& loader)
      : loader_(loader), capture_stream_(c10::cuda::getStreamFromPool()), pool_(at::cuda::graph_pool_handle()) {}

  std::vector<torch::Tensor> run(const std::vector<torch::Tensor>& inputs) {
    Key key;
    for (const torch::Tensor& input : inputs) key.emplace_back(input.sizes().vec(), input.scalar_type());
    auto found = graphs_.find(key);
    if (found == graphs_.end()) found = graphs_.emplace(key, capture(inputs)).first;
    Captured& captured = *found->second;
    for (size_t i = 0; i < inputs.size(); ++i) captured.inputs[i].copy_(inputs[i]);
    captured.graph.replay();
    std::vector<torch::Tensor> outputs;
    for (const torch::Tensor& output : captured.outputs) outputs.push_back(output.clone());
    return outputs;
  }

  size_t graph_count() const { return graphs_.size(); }

 private:
  using Key = std::vector<std::pair<std::vector<int64_t>, c10::ScalarType>>;
  struct Captured {
    at::cuda::CUDAGraph graph;
    std::vector<torch::Tensor> inputs;
    std::vector<torch::Tensor> outputs;
  };

  std::unique_ptr<Captured> capture(const std::vector<torch::Tensor>& inputs) {
    auto captured = std::make_unique<Captured>();
    for (const torch::Tensor& input : inputs) captured->inputs.push_back(input.clone());
    torch::cuda::synchronize();
    {
      c10::cuda::CUDAStreamGuard on_capture_stream(capture_stream_);
      for (int call = 0; call < 2; ++call) loader_.run(captured->inputs);  // lazy initialisation is not captured
      capture_stream_.synchronize();
      captured->graph.capture_begin(pool_, cudaStreamCaptureModeThreadLocal);
      captured->outputs = loader_.run(captured->inputs);
      captured->graph.capture_end();
    }
    torch::cuda::synchronize();
    return captured;
  }

  torch::inductor::AOTIModelPackageLoader& loader_;
  c10::cuda::CUDAStream capture_stream_;
  at::cuda::MempoolId_t pool_;
  std::map<Key, std::unique_ptr<Captured>> graphs_;
};

// Median milliseconds of `calls` synchronised calls of `call`, after 20 unmeasured ones.
template <typename Call>
static double median_ms(Call call, int calls) {
  for (int i = 0; i < 20; ++i) call();
  std::vector<double> times;
  for (int i = 0; i < calls; ++i) {
    torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    call();
    torch::cuda::synchronize();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int main(int argc, char** argv) {
  bool cuda_graphs = false;
  int timed_calls = 0;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--cuda-graphs") {
      cuda_graphs = true;
    } else if (arg == "--time" && i + 1 < argc) {
      timed_calls = std::stoi(argv[++i]);
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.size() != 2 || timed_calls < 0) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt2 CASES.pt [--cuda-graphs] [--time N]\n";
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
    torch::inductor::AOTIModelPackageLoader loader(paths[0], "model", /*run_single_threaded=*/true, 1, 0);
    const std::unordered_map<std::string, std::string> metadata = loader.get_metadata();
    torch::jit::Module cases = torch::jit::load(paths[1]);
    std::unique_ptr<GraphRunner> graphs;
    if (cuda_graphs) {
      const int64_t strategy = captured_kernel_strategy(metadata);
      const auto built_for = metadata.find("aitune_trt_aot.built_for");
      const bool rtx = built_for != metadata.end() &&
                       built_for->second.find("\"tensorrt_flavour\": \"TensorRT-RTX\"") != std::string::npos;
      if (strategy < 0) {
        std::cout << "cuda graphs: off (the package was built with kernel_specialization='lazy')" << std::endl;
      } else {
        const int engines = rtx ? give_kernel_strategy(loader, strategy) : 0;
        std::cout << "cuda graphs: on; kernel strategy " << strategy << " given to " << engines << " engine(s)"
                  << std::endl;
        graphs = std::make_unique<GraphRunner>(loader);
      }
    }
    auto run = [&](const std::vector<torch::Tensor>& inputs) {
      return graphs ? graphs->run(inputs) : loader.run(inputs);
    };
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
        std::vector<torch::Tensor> outputs = run(inputs);
        double error = (outputs.at(0).to(torch::kFloat) - expected.to(torch::kFloat)).abs().max().item<double>();
        std::cout << "batch " << inputs.at(0).size(0) << " call " << repeat + 1 << ": output "
                  << outputs.at(0).sizes() << " max abs error vs expected " << error << std::endl;
      }
      if (timed_calls > 0) {
        const double ms = median_ms([&] { run(inputs); }, timed_calls);
        std::cout << "batch " << inputs.at(0).size(0) << ": median " << ms << " ms per call over " << timed_calls
                  << " calls (" << (graphs ? "cuda graphs" : "no cuda graphs") << ")" << std::endl;
      }
    }
    if (graphs) std::cout << "cuda graphs captured: " << graphs->graph_count() << std::endl;
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
