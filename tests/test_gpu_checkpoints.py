"""GPU: ``ait.save`` / ``ait.load`` in a fresh process, and checkpoints of AITune's built-in backend."""

from __future__ import annotations

import json
from pathlib import Path

import aitune.torch as ait
import pytest
import torch

from aitune_trt_aot import CompilationSettings, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.stack import enabled_features
from tests.conftest import run_python
from tests.gpu_support import save_expected, tune_case

pytestmark = pytest.mark.gpu
OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


def _run(repo_root: Path, *args: str) -> dict:
    result = run_python(repo_root, *args, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1]) if "load_and_run" in args[1] else {}


@pytest.mark.parametrize(
    ("case", "ir", "precision", "batch_sizes"),
    [
        ("mlp", "dynamo", torch.float16, (1, 8, 16)),
        ("mlp", "dynamo", torch.float32, (1, 8, 16)),
        ("two_inputs", "dynamo", torch.float32, (1, 8, 16)),
        ("mlp", "ts", torch.float32, (16, 16)),
    ],
)
def test_save_then_load_in_fresh_process(
    tmp_path: Path, repo_root: Path, case: str, ir: str, precision: torch.dtype, batch_sizes: tuple[int, ...]
) -> None:
    """The reloaded module runs the saved engines (no recompilation) and gives the tuned outputs."""
    if ir == "ts" and not enabled_features().get("torchscript_frontend"):
        pytest.skip("no TorchScript frontend here")
    config = TorchTensorRTAotBackendConfig(ir=ir, compile_config=CompilationSettings(enabled_precisions={precision}))
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(config), batch_sizes=batch_sizes)
    batches = (1, 5, 16) if len(set(batch_sizes)) > 1 else (batch_sizes[0],)
    save_expected(tuned, reference, case, tmp_path / "expected.pt", batches)
    ait.save(tuned, tmp_path / "model.ait")
    report = _run(
        repo_root, "-m", "tests.scripts.load_and_run", case, str(tmp_path / "model.ait"), str(tmp_path / "expected.pt")
    )
    print(f"\n[fresh-process load {case} {ir} {precision}] {report}")
    assert report["backends"] == [OURS]
    assert max(report["errors"].values()) <= 1e-5
    assert max(report["errors_vs_eager"].values()) <= (5e-3 if precision == torch.float32 else 3e-2)


def test_our_checkpoint_resolves_to_us_without_import(tmp_path: Path, repo_root: Path) -> None:
    """A process that never imports aitune_trt_aot still loads our entries with our class."""
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend())
    save_expected(tuned, reference, "mlp", tmp_path / "expected.pt")
    ait.save(tuned, tmp_path / "model.ait")
    report = _run(
        repo_root,
        "-m",
        "tests.scripts.load_and_run",
        "mlp",
        str(tmp_path / "model.ait"),
        str(tmp_path / "expected.pt"),
        "--no-import",
    )
    print(f"\n[load without import] {report}")
    assert report["backends"] == [OURS]
    assert max(report["errors"].values()) <= 1e-5


def test_builtin_backend_checkpoint_loads_through_this_package(tmp_path: Path, repo_root: Path) -> None:
    """A checkpoint written by AITune's built-in TorchTensorRTAotBackend loads and runs with our class."""
    ckpt, expected = str(tmp_path / "builtin.ait"), str(tmp_path / "expected.pt")
    _run(repo_root, "-m", "tests.scripts.tune_with_builtin", "mlp", ckpt, expected)
    report = _run(repo_root, "-m", "tests.scripts.load_and_run", "mlp", ckpt, expected)
    print(f"\n[built-in checkpoint through aitune_trt_aot] {report}")
    assert report["backends"] == [OURS]
    # One call per batch size: the built-in engines run in the C++ runtime (see docs/known-issues.md).
    assert max(report["errors_vs_eager"].values()) <= 5e-3
