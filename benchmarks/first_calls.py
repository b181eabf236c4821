"""First call and steady call at each shape, per TensorRT-RTX kernel strategy and CUDA-graph mode (issue 28).

    python -m benchmarks.first_calls [--models resnet50 encoder] [--out first-calls.json]

What a call at a shape the engines have not run costs, and what each way of running them costs per call afterwards.
Per model: ``torch.export`` + ``torch_tensorrt.dynamo.compile`` over batch 1..32 (fp32), saved once as an exported
program. Each mode then loads its own copy of the engines, with its own empty TensorRT-RTX kernel cache, and calls it
at batch 1, 8, 13, 32 and 5 in that order, each one: the first call (synchronised), five more, a 2 s pause (``"lazy"``
swaps its specialised kernels in meanwhile), then the benchmark's ``time_calls``: 20 unmeasured calls and the median
of 100 synchronised ones.

Modes: the kernel specialization strategy (``"eager"``, ``"lazy"``, ``"none"``) times the CUDA graphs: ``ours``
(this backend's ``CudaGraphRunner``, one graph per shape, what ``cuda_graphs`` does), ``trt`` (TensorRT-RTX's own
whole-graph capture, ``CudaGraphStrategy`` 1) or ``off``. Batch 1 is each copy's first call of all (its execution
context is created there); the other shapes show the cost of a new shape. Prints a line per call and a table. GPU only.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from aitune_trt_aot.engine_runtime import reachable_engines
from aitune_trt_aot.formats.raw_engines import engines_pickled_raw
from aitune_trt_aot.pt2.engines import KERNEL_STRATEGY_CODES
from benchmarks.run import bare_compile, build, time_calls

SHAPES = (1, 8, 13, 32, 5)
NEW_SHAPES = SHAPES[1:]  # after the copy's first call of all
# TensorRT-RTX CudaGraphStrategy: kDISABLED (0), kWHOLE_GRAPH_CAPTURE (1).
GRAPH_STRATEGY_CODES = {"off": 0, "ours": 0, "trt": 1}
MODES = (
    ("eager", "ours"),
    ("eager", "off"),
    ("lazy", "off"),
    ("none", "off"),
    ("lazy", "trt"),
    ("eager", "trt"),
    ("none", "trt"),
    ("none", "ours"),
)
SPECIALISATION_PAUSE_S = 2.0
WARM_CALLS, TIMED_CALLS = 20, 100


def timed(call: Callable[..., Any], *args: torch.Tensor) -> tuple[float, Any]:
    """Seconds of one synchronised call, and its output."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = call(*args)
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def saved_engines(name: str) -> tuple[Path, torch.nn.Module, dict[int, tuple[torch.Tensor, ...]]]:
    """Compile ``name`` over batch 1..32, save it (engines raw); return the path, an eager copy and inputs per shape."""
    import torch_tensorrt

    model, inputs = build(name)
    model = model.cuda()
    eager = copy.deepcopy(model)
    compiled, seconds = bare_compile(model, inputs(8), 32)
    print(f"{name}: compiled in {seconds:.1f} s", flush=True)
    path = Path(tempfile.mkdtemp()) / "model.pt2"
    with engines_pickled_raw():
        torch_tensorrt.save(compiled, str(path), retrace=False)
    del compiled
    torch.cuda.empty_cache()
    return path, eager, {batch: inputs(batch) for batch in SHAPES}


def measure_mode(
    name: str, path: Path, kernel: str, graphs: str, data: dict[int, tuple[torch.Tensor, ...]], refs: dict[int, Any]
) -> dict[str, Any]:
    """Load a copy of the engines with ``kernel`` and ``graphs``, then time and check each shape (module docstring)."""
    import torch_tensorrt
    from torch_tensorrt.runtime import RuntimeCache
    from torch_tensorrt.runtime._runtime_cache import _to_torchbind_handle

    row: dict[str, Any] = {"kernel": kernel, "graphs": graphs, "shapes": {}}
    start = time.perf_counter()
    module = torch_tensorrt.load(str(path)).module().cuda()
    cache = RuntimeCache()
    for engine in reachable_engines(module):
        engine.update_runtime_settings(
            KERNEL_STRATEGY_CODES[kernel], GRAPH_STRATEGY_CODES[graphs], _to_torchbind_handle(cache)
        )
    call = CudaGraphRunner(module, torch.device("cuda")) if graphs == "ours" else module
    row["load_s"] = time.perf_counter() - start
    with torch.no_grad():
        for batch in SHAPES:
            first, out = timed(call, *data[batch])
            error_first = (out - refs[batch]).abs().max().item()
            following = [timed(call, *data[batch])[0] for _ in range(5)]
            time.sleep(SPECIALISATION_PAUSE_S)
            steady_ms, _ = time_calls(lambda b=batch: call(*data[b]), warmup=WARM_CALLS, repeats=TIMED_CALLS)
            error_steady = (call(*data[batch]) - refs[batch]).abs().max().item()
            row["shapes"][batch] = {
                "first_ms": first * 1e3,
                "next5_ms": [round(t * 1e3, 3) for t in following],
                "steady_ms": steady_ms,
                "err_first": error_first,
                "err_steady": error_steady,
            }
            print(
                f"{name} kernel={kernel:5s} graphs={graphs:4s} b={batch:3d} first {first * 1e3:8.2f} ms, next "
                f"{[round(t * 1e3, 2) for t in following]}, steady {steady_ms:.3f} ms, "
                f"err {error_first:.2e}/{error_steady:.2e}",
                flush=True,
            )
    return row


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: per model and mode, the first call of all, first calls at new shapes, steady calls, worst error."""
    lines = [
        "| model | kernels | CUDA graphs | 1st call of all ms (batch 1) | 1st call at a new shape ms (batch "
        f"{', '.join(map(str, NEW_SHAPES))}) | steady ms at 1 / 8 / 32 | max abs err vs eager |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for row in rows:
            if "error" in row:
                lines.append(f"| {name} | {row['kernel']} | {row['graphs']} | {row['error']} | | | |")
                continue
            shapes = row["shapes"]
            firsts = [shapes[b]["first_ms"] for b in NEW_SHAPES]
            steady = " / ".join(f"{shapes[b]['steady_ms']:.3f}" for b in (1, 8, 32))
            error = max(max(s["err_first"], s["err_steady"]) for s in shapes.values())
            lines.append(
                f"| {name} | {row['kernel']} | {row['graphs']} | {shapes[1]['first_ms']:.0f} | "
                f"{min(firsts):.0f}-{max(firsts):.0f} | {steady} | {error:.1e} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Measure every mode of each model; print the table, write the rows as JSON where asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "encoder"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.first_calls needs an NVIDIA GPU with CUDA: none is visible here.")
    results: dict[str, list[dict[str, Any]]] = {}
    for name in args.models:
        path, eager, data = saved_engines(name)
        with torch.no_grad():
            refs = {batch: eager(*data[batch]) for batch in SHAPES}
        results[name] = []
        for kernel, graphs in MODES:
            try:
                results[name].append(measure_mode(name, path, kernel, graphs, data, refs))
            except Exception as error:  # one mode failing must not lose the others' rows
                results[name].append({"kernel": kernel, "graphs": graphs, "error": f"{type(error).__name__}: {error}"})
            torch.cuda.empty_cache()
    print(f"\n{torch.cuda.get_device_name()}\n\n{table(results)}")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
