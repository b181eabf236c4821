"""Helpers for GPU tests and scripts: tune a model case with a backend, check who serves calls, compare with eager."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aitune.torch as ait
import torch
from aitune.torch.backend.backend import Backend
from aitune.torch.module_registry import MODULE_REGISTRY

from tests.support.models import CASES, build_model, caller, dataset
from tests.support.processes import PrestartedPython, json_tail
from tests.support.tuning import strategy_for

BATCH_SIZES = (1, 8, 16)
# At least 8 batch sizes in a changing order; each is called 3 times with new inputs (issue: dynamic shapes
# must be proven, not assumed).
SWEEP = (1, 16, 5, 12, 3, 16, 8, 2, 13, 1)


def tune_case(
    case: str,
    backend: Backend,
    name: str | None = None,
    batch_sizes=BATCH_SIZES,
    strategy: ait.OneBackendStrategy | None = None,
    seed: int = 0,
) -> tuple[Any, torch.nn.Module]:
    """Tune case ``case`` on the GPU with ``backend``; return the tuned module and an eager fp32 reference.

    The reference is a deep copy taken BEFORE ``ait.Module`` wraps the model: AITune patches the wrapped
    module's forward, so the original object would run through the tuned backend. ``strategy`` defaults to
    :func:`strategy_for` (no performance validation, the batch range as given). ``seed`` picks the weights.
    """
    device = torch.device("cuda")
    name = f"{name or case}-{uuid.uuid4().hex[:8]}"  # AITune keeps samples under ~/.cache/aitune/<name>
    # ait.tune tunes every registered module and refuses one tuned before ("has already been tuned"): forget
    # modules an earlier tune_case of this test made. They keep running their backends (the benchmark does the same).
    MODULE_REGISTRY.clear()
    model = build_model(case, seed=seed).to(device)
    reference = copy.deepcopy(model)
    tuned = ait.Module(model, name, strategy=strategy or strategy_for(backend))
    ait.tune(
        caller(case, tuned),
        dataset(case, device),
        batch_sizes=list(batch_sizes),
        device=device,
        ignore_failing_modules=False,
    )
    return tuned, reference


def selected_backends(tuned: Any) -> list[Backend]:
    """The backends AITune selected for the module's graphs."""
    return list(tuned._self_wrapper.backends.values())


def the_backend(tuned: Any) -> Any:
    """The one backend AITune selected; fails unless it is aitune_trt_aot's and it built TensorRT engines."""
    from aitune_trt_aot import TorchTensorRTAotBackend

    backends = selected_backends(tuned)
    assert len(backends) == 1, f"expected one tuned graph, got {backends}"
    (backend,) = backends
    assert isinstance(backend, TorchTensorRTAotBackend), f"AITune selected {backend!r}, not aitune_trt_aot's backend"
    assert backend.coverage is None or backend.coverage.engines >= 1, f"no TensorRT engine: {backend.coverage}"
    return backend


def graph_runner(backend: Any) -> Any:
    """The CUDA-graph runner inside ``backend``'s runner (also below ``PinnedRunner``); None where there is none."""
    from aitune_trt_aot.cuda_graphs import CudaGraphRunner

    runner = backend.runner
    while runner is not None and not isinstance(runner, CudaGraphRunner):
        runner = vars(runner).get("runner")  # each wrapper's own field (CheckedEngines forwards attribute reads)
    return runner


def graph_count(backend: Any) -> int:
    """How many CUDA graphs ``backend``'s runner holds (0 where its calls are not captured)."""
    runner = graph_runner(backend)
    return 0 if runner is None else runner.graph_count


class CallCounter:
    """Wraps a backend's runner and counts the calls that reach it."""

    def __init__(self, backend: Any) -> None:
        """Install the counter on ``backend``."""
        self.backend = backend
        self.runner = backend._runner
        self.calls = 0
        backend._runner = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Count, then run the engines."""
        self.calls += 1
        return self.runner(*args, **kwargs)


def inputs_for(case: str, batch: int, seed: int = 1) -> tuple[tuple, dict]:
    """Deterministic inputs of case ``case`` for one call at batch size ``batch``."""
    torch.manual_seed(seed * 1000 + batch)
    return CASES[case].make_inputs(batch, torch.device("cuda"))


def _same_layout(actual: Any, expected: torch.Tensor, case: str, batch: int) -> None:
    assert actual is not None, f"{case}: the tuned module returned None at batch {batch}"
    assert actual.shape == expected.shape, f"{case}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{case}: dtype {actual.dtype} != {expected.dtype}"


def _error(actual: Any, expected: torch.Tensor, case: str, batch: int) -> float:
    _same_layout(actual, expected, case, batch)
    return float((actual.float() - expected.float()).abs().max())


def cosine_shortfall(actual: Any, expected: torch.Tensor, case: str, batch: int) -> float:
    """A :func:`sweep_errors` measure: 1 - cosine similarity to eager (the 8-bit builds' self-check metric)."""
    from aitune_trt_aot.validation import accuracy_metrics  # not at import: scripts import this module without it

    _same_layout(actual, expected, case, batch)
    return 1.0 - accuracy_metrics(actual, expected)[0]


def relative_error(actual: Any, expected: torch.Tensor, case: str, batch: int) -> float:
    """A :func:`sweep_errors` measure: ``||actual - eager|| / ||eager||``."""
    from aitune_trt_aot.validation import accuracy_metrics

    _same_layout(actual, expected, case, batch)
    return accuracy_metrics(actual, expected)[1]


def sweep_errors(
    tuned: Any,
    reference: torch.nn.Module,
    case: str,
    order=SWEEP,
    repeats: int = 3,
    call: Any = None,
    measure: Callable[[Any, torch.Tensor, str, int], float] = _error,
) -> dict[int, float]:
    """Largest error vs eager per batch size, calling in ``order``, ``repeats`` calls each with new inputs.

    ``call`` (default: ``tuned`` itself) is what is called, e.g. ``direct_call(tuned)``. Every call must reach this
    package's backend (counted), not AITune's eager fallback. ``measure`` is the error (default: largest absolute
    difference; :func:`cosine_shortfall`, :func:`relative_error`).
    """
    call = tuned if call is None else call
    counter = CallCounter(the_backend(tuned))
    errors: dict[int, float] = {}
    calls = 0
    try:
        for position, batch in enumerate(order):
            for repeat in range(repeats):
                args, kwargs = inputs_for(case, batch, seed=100 + position * repeats + repeat)
                with torch.no_grad():
                    actual, expected = call(*args, **kwargs), reference(*args, **kwargs)
                calls += 1
                errors[batch] = max(errors.get(batch, 0.0), measure(actual, expected, case, batch))
    finally:
        counter.backend._runner = counter.runner
    assert counter.calls == calls, f"{case}: {calls - counter.calls} of {calls} calls did not reach the backend"
    return errors


def scale_of(reference: torch.nn.Module, case: str, batch: int) -> float:
    """The largest absolute eager output (at least 1), to state tolerances relative to the output scale."""
    args, kwargs = inputs_for(case, batch)
    with torch.no_grad():
        return max(1.0, float(reference(*args, **kwargs).abs().max()))


def save_expected(tuned: Any, reference: torch.nn.Module, case: str, path: Path, batches=(1, 5, 16)) -> None:
    """Store, per batch size, the inputs with the tuned and the eager outputs (on CPU) for a later process."""
    expected = {}
    for batch in batches:
        args, kwargs = inputs_for(case, batch)
        with torch.no_grad():
            output, eager = tuned(*args, **kwargs), reference(*args, **kwargs)
        cpu_kwargs = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        expected[batch] = (tuple(a.cpu() for a in args), cpu_kwargs, output.cpu(), eager.cpu())
    torch.save(expected, path)


def fresh_loader(tmp_path: Path, *flags: str) -> PrestartedPython:
    """A fresh process for :func:`reload_in_fresh_process`, started now so that it imports while the test tunes."""
    return PrestartedPython("tests.scripts.load_and_run", *flags, workdir=tmp_path)


def reload_in_fresh_process(
    process: PrestartedPython, tmp_path: Path, tuned: Any, reference: torch.nn.Module, case: str, batches=(1, 5, 16)
) -> dict:
    """Save with ``aitune_trt_aot.save``, ``ait.load`` in ``process`` (:func:`fresh_loader`), run the same inputs.

    Returns the script's report (``tests/scripts/load_and_run.py``): load seconds, backend classes, calls
    served by the backend and, per batch size, the largest difference from this process's outputs and from eager.
    """
    from aitune_trt_aot import save

    save_expected(tuned, reference, case, tmp_path / "expected.pt", batches)
    save(tuned, tmp_path / "model.ait")
    result = process.run(case, str(tmp_path / "model.ait"), str(tmp_path / "expected.pt"))
    return json_tail(result, "ait.load in a fresh process")
