"""Helpers for GPU tests and scripts: tune a model case with a backend, compare with eager."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import aitune.torch as ait
import torch
from aitune.torch.backend.backend import Backend

from tests.models import CASES, build_model, caller, dataset

BATCH_SIZES = (1, 8, 16)


def strategy_for(backend: Backend) -> ait.OneBackendStrategy:
    """One-backend strategy that keeps the tuned batch range as given and never swaps in eager."""
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)
    strategy.enable_performance_validation(False)
    return strategy


def tune_case(
    case: str, backend: Backend, name: str | None = None, batch_sizes=BATCH_SIZES
) -> tuple[Any, torch.nn.Module]:
    """Tune case ``case`` on the GPU with ``backend``; return the tuned module and an eager fp32 reference."""
    device = torch.device("cuda")
    model = build_model(case).to(device)
    reference = copy.deepcopy(model)
    tuned = ait.Module(model, name or case, strategy=strategy_for(backend))
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


def inputs_for(case: str, batch: int, seed: int = 1) -> tuple[tuple, dict]:
    """Deterministic inputs of case ``case`` for one call at batch size ``batch``."""
    torch.manual_seed(seed + batch)
    return CASES[case].make_inputs(batch, torch.device("cuda"))


def max_abs_error(tuned: Any, reference: torch.nn.Module, case: str, batch: int, repeats: int = 3) -> float:
    """Largest absolute difference from eager fp32 at one batch size, over ``repeats`` calls.

    Several calls, because runtimes may switch kernels after the first call at a shape.
    """
    args, kwargs = inputs_for(case, batch)
    worst = 0.0
    with torch.no_grad():
        expected = reference(*args, **kwargs)
        for _ in range(repeats):
            actual = tuned(*args, **kwargs)
            assert actual is not None, f"{case}: the tuned module returned None at batch {batch}"
            assert actual.shape == expected.shape, f"{case}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
            assert actual.dtype == expected.dtype, f"{case}: dtype {actual.dtype} != {expected.dtype}"
            worst = max(worst, float((actual.float() - expected.float()).abs().max()))
    return worst


def scale_of(reference: torch.nn.Module, case: str, batch: int) -> float:
    """The largest absolute eager output, to state tolerances relative to the output scale."""
    args, kwargs = inputs_for(case, batch)
    with torch.no_grad():
        return float(reference(*args, **kwargs).abs().max())


def save_expected(tuned: Any, reference: torch.nn.Module, case: str, path, batches=(1, 5, 16)) -> None:
    """Store, per batch size, the inputs with the tuned and the eager outputs (on CPU) for a later process."""
    expected = {}
    for batch in batches:
        args, kwargs = inputs_for(case, batch)
        with torch.no_grad():
            output, eager = tuned(*args, **kwargs), reference(*args, **kwargs)
        cpu_kwargs = {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        expected[batch] = (tuple(a.cpu() for a in args), cpu_kwargs, output.cpu(), eager.cpu())
    torch.save(expected, path)


def reload_in_fresh_process(
    repo_root: Path, tmp_path: Path, tuned: Any, reference: torch.nn.Module, case: str, batches=(1, 5, 16)
) -> dict:
    """``ait.save`` the tuned module, ``ait.load`` it in a fresh process and run the same inputs there.

    Returns the script's report (``tests/scripts/load_and_run.py``): load seconds, backend classes and,
    per batch size, the largest difference from this process's outputs and from eager.
    """
    from tests.conftest import run_python  # here: subprocess scripts import this module without the package

    save_expected(tuned, reference, case, tmp_path / "expected.pt", batches)
    ait.save(tuned, tmp_path / "model.ait")
    args = ("-m", "tests.scripts.load_and_run", case, str(tmp_path / "model.ait"), str(tmp_path / "expected.pt"))
    result = run_python(repo_root, *args, timeout=600)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, f"ait.load in a fresh process failed:\n{output}"
    return json.loads(result.stdout.strip().splitlines()[-1])
