r"""One rank of a multi-process tune: ``torchrun`` (``python -m torch.distributed.run``) starts one per process.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=N -m tests.scripts.tune_ranks \\
           CASE DEVICE OUT [--fake] [--fail] [--batch-sizes 1,8,16]

Every rank joins a gloo process group (the launcher's environment; gloo works on the CPU and with several ranks on
one GPU, where NCCL refuses), tunes model case CASE with this backend on DEVICE (an explicit ``device=``, e.g.
``cuda:0`` for every rank of a one-GPU host), compares the tuned module with an eager copy, saves it with
``aitune_trt_aot.save`` to ``OUT/model.ait`` (each rank its own ``model.rank-R-of-W.ait``), loads its file back into a
fresh module and compares again. It writes ``OUT/rank-R.json``: its role (``built_from_cache``), the shared-build log
lines, tune seconds, errors vs eager, the checkpoint it wrote and loaded, and any error (a failed tune is reported,
not raised, so every rank writes its report). The build cache is ``$AITUNE_TRT_AOT_CACHE_DIR``, shared by the ranks.

``--fake``: the CPU tests' tracing frontend and ``torch.save`` format (``tests/support/fake_build.py``), with a build
that takes 1 s so that the other ranks wait for it; ``--fail``: that build raises. The project must be importable
(``PYTHONPATH`` holding the checkout, as ``tests/support/processes.subprocess_env`` sets it).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import aitune_trt_aot
from aitune_trt_aot.stack import ensure_tensorrt_module

ensure_tensorrt_module()  # before aitune.torch, which imports `tensorrt` (TensorRT-RTX installs it as tensorrt_rtx)

import aitune.torch as ait  # noqa: E402
from aitune.torch.backend import TorchEagerBackend  # noqa: E402
from aitune.torch.module_registry import MODULE_REGISTRY  # noqa: E402

from tests.support.gpu import CallCounter, selected_backends  # noqa: E402
from tests.support.models import CASES, build_model, caller, dataset  # noqa: E402
from tests.support.tuning import strategy_for  # noqa: E402

SHARED_BUILD_LOGGERS = ("aitune_trt_aot.pipeline.shared_build", "aitune_trt_aot.pipeline.cache_reuse",
                        "aitune_trt_aot.cache_lock", "aitune_trt_aot.safe_save")  # fmt: skip


class Lines(logging.Handler):
    """Keeps the messages of the shared-build loggers."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("device")
    parser.add_argument("out", type=Path)
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--batch-sizes", default="1,8,16")
    return parser.parse_args()


def _backend(fake: bool, fail: bool) -> Any:
    from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig

    if not fake:
        return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig())
    from tests.support.fake_build import TracedFrontend, install_fakes

    install_fakes(TracedFrontend(delay=1.0, error=RuntimeError("the fake compile failed") if fail else None))
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir="cpu_trace"))


def _largest_error(
    module: Any, reference: torch.nn.Module, case: str, device: torch.device, batches: list[int]
) -> float:
    """The largest absolute difference from eager over calls at the smallest and largest batch size."""
    error = 0.0
    for batch in (min(batches), max(batches)):
        torch.manual_seed(1000 + batch)
        args, kwargs = CASES[case].make_inputs(batch, device)
        with torch.no_grad():
            actual, expected = module(*args, **kwargs), reference(*args, **kwargs)
        error = max(error, float((actual.float() - expected.float()).abs().max()))
    return error


def _scale(reference: torch.nn.Module, case: str, device: torch.device, batch: int) -> float:
    torch.manual_seed(1000 + batch)
    args, kwargs = CASES[case].make_inputs(batch, device)
    with torch.no_grad():
        return max(1.0, float(reference(*args, **kwargs).abs().max()))


def _tuned_facts(tuned: Any, reference: torch.nn.Module, case: str, device: torch.device, batches: list[int]) -> dict:
    (backend,) = selected_backends(tuned)
    counter = CallCounter(backend)
    error = _largest_error(tuned, reference, case, device, batches)
    backend._runner = counter.runner
    lookups = [r for r in backend._build_results if "cache_hit" in r]
    return {
        "built_from_cache": backend.built_from_cache,
        "build_seconds": backend.build_seconds,
        "waited_seconds": sum(r.get("waited_seconds", 0.0) for r in lookups),
        "artifact": str(backend.artifact_path),
        "calls_served": counter.calls,
        "error_vs_eager": error,
        "output_scale": _scale(reference, case, device, max(batches)),
    }


def _save_and_load(tuned: Any, reference: torch.nn.Module, args: argparse.Namespace, batches: list[int]) -> dict:
    written = aitune_trt_aot.save(tuned, args.out / "model.ait")
    MODULE_REGISTRY.clear()
    strategy = strategy_for(TorchEagerBackend())
    fresh = ait.Module(build_model(args.case, seed=123), f"{args.case}-ranks", strategy=strategy)
    loaded = aitune_trt_aot.load(fresh, args.out / "model.ait")
    error = _largest_error(loaded, reference, args.case, torch.device(args.device), batches)
    return {"saved": str(written), "loaded_error_vs_eager": error}


def main() -> None:
    """Join the process group, tune, check, save, load, report; leave the group."""
    args = _arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    lines = Lines()
    for name in SHARED_BUILD_LOGGERS:
        logging.getLogger(name).addHandler(lines)
        logging.getLogger(name).setLevel(logging.INFO)
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device(args.device)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    backend = _backend(args.fake, args.fail)
    model = build_model(args.case, seed=0).to(device)
    reference = copy.deepcopy(model)
    tuned = ait.Module(model, f"{args.case}-ranks", strategy=strategy_for(backend))
    report: dict[str, Any] = {"rank": rank, "world_size": world_size, "error": None}
    dist.barrier()  # every rank has imported and built its model: the tune times start together
    started = time.time()
    try:
        ait.tune(caller(args.case, tuned), dataset(args.case, device), batch_sizes=batches, device=device,
                 ignore_failing_modules=False)  # fmt: skip
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
    report.update(tune_started=started, tune_ended=time.time(), tune_seconds=time.time() - started)
    if report["error"] is None:
        report.update(_tuned_facts(tuned, reference, args.case, device, batches))
        report.update(_save_and_load(tuned, reference, args, batches))
    report["log"] = lines.lines
    (args.out / f"rank-{rank}.json").write_text(json.dumps(report, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
