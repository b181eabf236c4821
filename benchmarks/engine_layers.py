"""What TensorRT made of a benchmark model: the engine's layers and where one call's time goes, per precision.

    python -m benchmarks.engine_layers [--model encoder] [--precisions fp16 int8] [--batch 32] [--top 25]

Builds the model with this backend (``cuda_graphs=False``, so every call runs the engines), from recorded calls at
batch 1, 8 and 32. For each precision it prints the build's coverage, the engine inspector's layer list (layer
names: Torch-TensorRT builds at the inspector's default verbosity), the time per call at ``--batch``, then the
per-layer time of 10 calls from Torch-TensorRT's engine profiler, largest first. Layer names are Myelin's: a fused
kernel is named after the operations it holds (``__myl_FcAddRelu``: a matrix multiply with bias and ReLU). GPU only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.engine_runtime import reachable_engines
from benchmarks.run import build
from tests.support.recording import record, sample_store

PROFILED_CALLS = 10
TIMED_CALLS = 50


def loaded_artifact(backend: TorchTensorRTAotBackend) -> Any:
    """The artifact ``backend`` loaded, inside the runners that wrap it (engine-error check, CUDA graphs, pinning)."""
    loaded = backend.runner
    while hasattr(loaded, "runner"):
        loaded = loaded.runner
    return loaded


def layer_names(engine: torch.ScriptObject) -> list[str]:
    """The engine inspector's layer names."""
    layers = json.loads(engine.get_engine_layer_info()).get("Layers", [])
    return [layer if isinstance(layer, str) else layer.get("Name", "?") for layer in layers]


def profiled_layer_times(engines: list[torch.ScriptObject], call: Any) -> Counter:
    """Microseconds per layer over :data:`PROFILED_CALLS` calls, from the engines' execution profile traces."""
    folder = Path(tempfile.mkdtemp())
    for engine in engines:
        engine.profile_path_prefix = str(folder)
        engine.enable_profiling()
    for _ in range(PROFILED_CALLS):
        call()
    torch.cuda.synchronize()
    for engine in engines:
        engine.disable_profiling()
    times: Counter = Counter()
    for trace in folder.rglob("*engine_execution_profile.trace"):
        data = json.loads(trace.read_text())
        for event in data if isinstance(data, list) else data.get("traceEvents", []):
            if isinstance(event, dict) and "dur" in event:
                times[event.get("name", "?")] += float(event["dur"])
    return times


def report(model_name: str, precision: str, batch: int, top: int) -> None:
    """Build ``model_name`` in ``precision`` and print its layers, time per call and per-layer profile."""
    model, make_inputs = build(model_name, 0)
    model = model.cuda()
    calls = [(make_inputs(size), {}) for size in (1, 8, 32) for _ in range(4)]
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(precision=precision, cuda_graphs=False))
    folder = Path(tempfile.mkdtemp())
    backend.build(model, record(model, calls), sample_store(calls, folder / "recorded"), torch.device("cuda"), folder)
    print(f"[{precision}] {backend.coverage.describe()}")
    engines = reachable_engines(loaded_artifact(backend))
    for number, engine in enumerate(engines):
        names = layer_names(engine)
        print(f"[{precision}] engine {number}: {len(names)} layers")
        for name in names:
            print(f"    {name}")
    inputs = make_inputs(batch)
    for _ in range(20):
        backend.infer(*inputs)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(TIMED_CALLS):
        backend.infer(*inputs)
    torch.cuda.synchronize()
    print(f"[{precision}] batch {batch}: {(time.perf_counter() - start) / TIMED_CALLS * 1e3:.3f} ms per call")
    times = profiled_layer_times(engines, lambda: backend.infer(*inputs))
    total = sum(times.values())
    print(f"[{precision}] profiled: {total:.0f} us over {PROFILED_CALLS} calls, {len(times)} layers; the largest:")
    for name, microseconds in times.most_common(top):
        share = microseconds / max(total, 1e-9) * 100
        print(f"    {share:5.1f}%  {microseconds / PROFILED_CALLS:7.1f} us/call  {name}")


def main() -> None:
    """Parse the arguments and report each precision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="encoder")
    parser.add_argument("--precisions", nargs="+", default=["fp16", "int8"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.engine_layers needs an NVIDIA GPU with CUDA: none is visible here.")
    for precision in args.precisions:
        report(args.model, precision, args.batch, args.top)


if __name__ == "__main__":
    main()
