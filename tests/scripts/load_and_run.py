"""Fresh-process check: ``ait.load`` a checkpoint and run it, without any recompilation.

Usage: python -m tests.scripts.load_and_run CASE CHECKPOINT EXPECTED.pt [--no-import]
   or: python -m tests.scripts.load_and_run --args-from-stdin [--no-import], then CASE CHECKPOINT EXPECTED.pt as
       one JSON list on stdin (tests start it ahead: tests.support.processes.PrestartedPython)
Prints one JSON line: load seconds, backend classes, the engines' runtime settings right after the load (kernel
cache bytes loaded), the shapes the load warmed up and the CUDA graphs held right after it, calls and how many the
backend served, first-call seconds and max abs error per batch size, the worst cosine similarity and relative L2
error to eager per batch size (the 8-bit builds' metric, ``aitune_trt_aot.validation.accuracy_metrics``), and
(unless ``--no-import``) the max abs error of ``aitune_trt_aot.direct_call`` on the loaded module per batch size.
``--no-import`` skips ``import aitune_trt_aot`` (the checkpoint itself must bring the backend in).
"""

from __future__ import annotations

import json
import sys
import time

import torch

if "--no-import" not in sys.argv:
    import aitune_trt_aot  # noqa: F401
else:
    import torch_tensorrt  # noqa: F401  (makes `tensorrt` importable for aitune on TensorRT-RTX hosts)

import aitune.torch as ait  # noqa: E402
import torch_tensorrt  # noqa: E402
from aitune.torch.utils.module import move_tensors_to_device  # noqa: E402

from tests.support.gpu import CallCounter, graph_count, selected_backends, strategy_for  # noqa: E402
from tests.support.models import build_model  # noqa: E402
from tests.support.processes import arguments  # noqa: E402


def _forbid(*_: object, **__: object) -> None:
    raise AssertionError("ait.load recompiled the model")


def _direct_call_errors(loaded: torch.nn.Module, expected: dict) -> dict[str, float]:
    """Per batch size, the largest difference between ``direct_call(loaded)`` and the stored tuned outputs."""
    direct = aitune_trt_aot.direct_call(loaded)
    errors = {}
    for batch, (args, kwargs, output, _) in expected.items():
        args, kwargs = move_tensors_to_device((args, kwargs), torch.device("cuda"))
        with torch.no_grad():
            actual = direct(*args, **kwargs)
        errors[str(batch)] = float((actual.float().cpu() - output.float()).abs().max())
    return errors


def main(facts: dict | None = None) -> None:
    """Load, run every stored input, compare with the stored eager outputs; ``facts`` are added to the report."""
    case, checkpoint, expected_path = arguments(sys.argv)[:3]
    torch_tensorrt.dynamo.compile = _forbid
    torch_tensorrt.compile = _forbid
    torch_tensorrt.ts.compile = _forbid
    expected = torch.load(expected_path)
    model = build_model(case, seed=123)  # other weights: the engines must not depend on them
    from aitune.torch.backend import TorchEagerBackend

    start = time.perf_counter()
    loaded = ait.load(ait.Module(model, case, strategy=strategy_for(TorchEagerBackend())), checkpoint)
    load_seconds = time.perf_counter() - start
    from aitune_trt_aot.validation import accuracy_metrics  # after ait.load: --no-import lets the checkpoint import it

    kernel_settings = [b.kernel_settings for b in selected_backends(loaded) if hasattr(b, "kernel_settings")]
    warmed_shapes = [b.warmed_shapes for b in selected_backends(loaded) if hasattr(b, "warmed_shapes")]
    graphs_at_load = [graph_count(b) for b in selected_backends(loaded) if hasattr(b, "_runner")]
    counters = [CallCounter(b) for b in selected_backends(loaded) if hasattr(b, "_runner")]
    calls = 0
    errors, errors_vs_eager, accuracy_vs_eager = {}, {}, {}
    first_call_by_batch = {}
    for batch, (args, kwargs, output, eager) in expected.items():
        args, kwargs = move_tensors_to_device((args, kwargs), torch.device("cuda"))
        for _ in range(3):  # several calls: runtimes may switch kernels after the first call at a shape
            start = time.perf_counter()
            with torch.no_grad():
                actual = loaded(*args, **kwargs)
            torch.cuda.synchronize()
            calls += 1
            first_call_by_batch.setdefault(str(batch), round(time.perf_counter() - start, 4))
            error = float((actual.float().cpu() - output.float()).abs().max())
            error_vs_eager = float((actual.float().cpu() - eager.float()).abs().max())
            errors[str(batch)] = max(errors.get(str(batch), 0.0), error)
            errors_vs_eager[str(batch)] = max(errors_vs_eager.get(str(batch), 0.0), error_vs_eager)
            cosine, relative = accuracy_metrics(actual.cpu(), eager)
            worst = accuracy_vs_eager.get(str(batch), {"cosine": 1.0, "relative_error": 0.0})
            accuracy_vs_eager[str(batch)] = {
                "cosine": min(worst["cosine"], cosine),
                "relative_error": max(worst["relative_error"], relative),
            }
    served_by_backend = sum(c.calls for c in counters)
    backends = [f"{type(b).__module__}.{type(b).__name__}" for b in selected_backends(loaded)]
    direct_errors = None if "--no-import" in sys.argv else _direct_call_errors(loaded, expected)
    print(
        json.dumps(
            {
                "load_seconds": load_seconds,
                "first_call_seconds": next(iter(first_call_by_batch.values()), None),
                "first_call_seconds_by_batch": first_call_by_batch,
                "kernel_settings_at_load": kernel_settings,
                "warmed_shapes_at_load": warmed_shapes,
                "graphs_at_load": graphs_at_load,
                "backends": backends,
                "calls": calls,
                "served_by_backend": served_by_backend,
                "errors": errors,
                "errors_vs_eager": errors_vs_eager,
                "accuracy_vs_eager": accuracy_vs_eager,
                "direct_call_errors": direct_errors,
                **(facts or {}),
            }
        )
    )


if __name__ == "__main__":
    main()
