"""Run a ``.pt2`` package written by aitune_trt_aot, the way a serving process would: no AITune, no torch_tensorrt.

    python examples/deploy_pt2.py model.pt2 --batches 1 5
    python examples/deploy_pt2.py model.pt2 --write-cases cases.pt   # inputs + outputs for examples/cpp
    python examples/deploy_pt2.py model.pt2 --check-cases cases.pt   # compare with stored outputs
    python examples/deploy_pt2.py model.pt2 --cuda-graphs false      # each call without a CUDA graph

Prints the package's input ranges, the load time and, per batch size, the output shapes and call times (the first
call at a shape compiles TensorRT-RTX kernels and, under CUDA graphs, captures).
The package needs PyTorch, a GPU, the TensorRT(-RTX) library and Torch-TensorRT's runtime library (see
docs/pt2.md); ``AITUNE_TRT_AOT_RUNTIME_ONLY=1`` keeps ``aitune_trt_aot`` from importing AITune.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("AITUNE_TRT_AOT_RUNTIME_ONLY", "1")

import torch  # noqa: E402
from pt2_cases import read_cases, write_cases  # noqa: E402  (examples/pt2_cases.py)

from aitune_trt_aot.pt2.runtime import Pt2Model, load_pt2  # noqa: E402


def random_inputs(model: Pt2Model, batch: int) -> list[torch.Tensor]:
    """One flat list of random input tensors with batch size ``batch`` (axis 0 where it is dynamic)."""
    if model.inputs is None:
        raise SystemExit(f"{model.path} records no input ranges; it was not written by aitune_trt_aot.")
    tensors = []
    for spec in model.inputs:
        shape = []
        for axis, bounds in enumerate(spec.dims):
            if bounds is None:
                raise SystemExit(f"Axis {axis} of an input is an expression of other axes; build inputs yourself.")
            low, high = bounds
            shape.append(batch if axis == 0 and low != high else low)
        tensors.append(torch.randn(shape, device=model.device).to(spec.dtype))
    return tensors


def main() -> int:
    """Load the package, run it, print what happened (the last line is a JSON summary)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default=None)
    parser.add_argument("--write-cases", metavar="FILE")
    parser.add_argument("--check-cases", metavar="FILE")
    parser.add_argument("--cuda-graphs", choices=("auto", "true", "false"), default="auto")
    options = parser.parse_args()

    cuda_graphs = {"auto": "auto", "true": True, "false": False}[options.cuda_graphs]
    start = time.perf_counter()
    model = load_pt2(options.package, device=options.device, cuda_graphs=cuda_graphs)
    load_seconds = time.perf_counter() - start
    print(f"loaded {options.package} in {load_seconds:.2f}s on {model.device}")
    print(f"inputs: {[s.describe() for s in model.inputs or []]}; built-in values: {model.constants}")

    if options.check_cases:
        cases = read_cases(options.check_cases)
    else:
        cases = [(random_inputs(model, batch), None) for batch in options.batches]
    summary: dict = {"load_seconds": load_seconds, "errors": {}, "call_ms": {}}
    written = []
    with torch.no_grad():
        for inputs, expected in cases:
            inputs = [t.to(model.device) for t in inputs]
            batch = inputs[0].shape[0]
            for _ in range(3):  # several calls per shape: some runtimes change kernels after the first call
                start = time.perf_counter()
                outputs = model.run_flat(inputs)
                torch.cuda.synchronize()
                summary["call_ms"].setdefault(str(batch), []).append(round((time.perf_counter() - start) * 1e3, 3))
                if expected is not None:
                    error = float((outputs[0].float().cpu() - expected.float()).abs().max())
                    summary["errors"][str(batch)] = max(summary["errors"].get(str(batch), 0.0), error)
            shapes = [tuple(o.shape) for o in outputs]
            print(f"batch {batch}: outputs {shapes}, ms per call {summary['call_ms'][str(batch)]}")
            written.append((inputs, outputs[0]))
    if options.write_cases:
        max_batch = max((s.dims[0][1] or 0) for s in model.inputs or [] if s.dims and s.dims[0])
        write_cases(options.write_cases, written, max_batch)
        print(f"wrote {len(written)} cases to {options.write_cases}")
    summary["graphs"] = 0 if model.graphs is None else model.graphs.graph_count
    summary["imported"] = sorted(name for name in ("aitune", "torch_tensorrt") if name in sys.modules)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
