"""GPU: a program that imports ``aitune.torch`` first loads and runs a checkpoint of this backend (issue 29, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitune_trt_aot import TorchTensorRTAotBackend, save
from aitune_trt_aot.stack import current_stack
from tests.support import tolerances
from tests.support.gpu import save_expected, tune_case
from tests.support.install import pip_install
from tests.support.processes import PrestartedPython, json_tail

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


def _loader(tmp_path: Path, name: str, *flags: str) -> PrestartedPython:
    workdir = tmp_path / name
    workdir.mkdir()
    return PrestartedPython("tests.scripts.load_aitune_first", *flags, workdir=workdir)


@pytest.mark.quick
def test_aitune_imported_first_loads_our_checkpoint(tmp_path: Path) -> None:
    """Fresh processes import ``aitune.torch`` before anything else, then ``ait.load`` and run our checkpoint.

    One also imports ``aitune_trt_aot`` (after AITune), one never does (the checkpoint brings it in). The project is
    pip-installed, offline, into a folder each process handles as site-packages at start-up, so the installed
    ``.pth`` hook gives AITune TensorRT-RTX as ``tensorrt``. Every call must reach this backend and match eager.
    """
    site_flag = f"--site={pip_install(tmp_path / 'install')}"
    with (
        _loader(tmp_path, "with-import", site_flag) as with_import,
        _loader(tmp_path, "without-import", site_flag, "--no-import") as without_import,
    ):
        tuned, reference = tune_case("mlp", TorchTensorRTAotBackend())
        save_expected(tuned, reference, "mlp", tmp_path / "expected.pt")
        save(tuned, tmp_path / "model.ait")
        args = ("mlp", str(tmp_path / "model.ait"), str(tmp_path / "expected.pt"))
        reports = {
            "with import": json_tail(with_import.run(*args), "aitune.torch first, then aitune_trt_aot, then ait.load"),
            "without import": json_tail(without_import.run(*args), "aitune.torch first, then ait.load"),
        }
    expected_module = "tensorrt_rtx" if current_stack().tensorrt_rtx else "tensorrt"
    for mode, report in reports.items():
        print(f"\n[aitune.torch imported first, {mode}] {report}")
        assert report["hook_installed"] and report["tensorrt_module"] == expected_module, mode
        assert "aitune_trt_aot" not in report["imported_by_aitune"], mode
        assert report["same_tensorrt_classes"], f"{mode}: AITune and Torch-TensorRT see different TensorRT classes"
        assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"], mode
        assert max(report["errors"].values()) <= tolerances.FP32, mode
        assert max(report["errors_vs_eager"].values()) <= tolerances.FP32, mode
    assert reports["without import"]["ours_imported_before_load"] is False
