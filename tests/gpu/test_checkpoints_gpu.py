"""GPU: checkpoints reloaded in fresh processes, AITune's built-in backend's checkpoints, damaged artifacts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import ArtifactError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import fresh_loader, inputs_for, reload_in_fresh_process, the_backend, tune_case
from tests.support.processes import json_tail, run_python

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


@pytest.mark.parametrize(("case", "precision"), [("mlp", "fp16"), ("two_inputs", "fp32")])
def test_save_then_load_in_fresh_process(tmp_path: Path, fresh_process, case: str, precision: str) -> None:
    """The reloaded module runs the saved engines (no recompilation) and gives the tuned outputs.

    ``direct_call`` on the reloaded module gives them too (keyword inputs included, for two_inputs).
    """
    config = TorchTensorRTAotBackendConfig(precision=precision)
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(config))
    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, case)
    print(f"\n[fresh-process load {case} {precision}] {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32
    assert max(report["errors_vs_eager"].values()) <= tolerances.BY_PRECISION[precision]
    assert report["direct_call_errors"].keys() == report["errors"].keys()
    assert max(report["direct_call_errors"].values()) <= tolerances.FP32


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.quick
def test_our_checkpoint_resolves_to_us_without_import_and_damage_is_refused(tmp_path: Path) -> None:
    """A process that never imports aitune_trt_aot loads our entries with our class; a flipped byte is refused.

    A damaged kernel cache only costs compile time: it is left out with a warning and the engines still match.
    """
    with fresh_loader(tmp_path, "--no-import") as process:
        tuned, reference = tune_case("mlp", TorchTensorRTAotBackend())
        report = reload_in_fresh_process(process, tmp_path, tuned, reference, "mlp")
    print(f"\n[load without import] {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32
    assert report["kernel_settings_at_load"][0]["kernel_cache_loaded_bytes"] > 0

    backend = the_backend(tuned)
    _flip_a_byte(backend.kernel_cache_path)
    # A handler on the logger itself: AITune's logging set-up keeps these records from pytest's caplog.
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = warnings.append  # type: ignore[method-assign]
    logger = logging.getLogger("aitune_trt_aot.engine_runtime")
    logger.addHandler(handler)
    try:
        backend._activate()
    finally:
        logger.removeHandler(handler)
    assert any("do not match the checksum" in record.getMessage() for record in warnings)
    assert backend.kernel_settings["kernel_cache_loaded_bytes"] == 0
    assert backend.kernel_cache_path is None  # left out of the entry: a later save does not carry it
    (x,), _ = inputs_for("mlp", 4)
    with torch.no_grad():
        assert float((tuned(x) - reference(x)).abs().max()) <= tolerances.FP32

    _flip_a_byte(backend.artifact_path)
    with pytest.raises(ArtifactError, match="is damaged"):
        backend._activate()  # what ait.load's deploy step runs


def test_builtin_backend_checkpoint_loads_through_this_package(tmp_path: Path) -> None:
    """A checkpoint written by AITune's built-in TorchTensorRTAotBackend loads and runs with our class."""
    ckpt, expected = str(tmp_path / "builtin.ait"), str(tmp_path / "expected.pt")
    with fresh_loader(tmp_path) as process:
        result = run_python("-m", "tests.scripts.tune_with_builtin", "mlp", ckpt, expected)
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        report = json_tail(process.run("mlp", ckpt, expected), "load built-in checkpoint")
    print(f"\n[built-in checkpoint through aitune_trt_aot] {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors_vs_eager"].values()) <= tolerances.FP32
