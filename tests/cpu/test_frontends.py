"""CPU: frontend and format registries, the build plan's stack and input rules, and the demo without a GPU."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import ConfigError, MissingRequirementError, TorchTensorRTAotBackendConfig, UnsupportedInputsError
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.frontends import FRONTENDS
from aitune_trt_aot.plan import _check_frontend_available, _check_inputs, _warn_dropped_settings, resolve_format
from aitune_trt_aot.stack import (
    Stack,
    current_stack,
    require_cuda,
    require_torch_tensorrt,
    torch_tensorrt_or_none,
)
from tests.support.processes import REPO_ROOT, run_python

no_torch_tensorrt = pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without it")
no_nvidia_driver = pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
    reason="checks a machine without an NVIDIA driver",
)


def _stack(features: dict[str, bool] | None = None, torch_version: str = "2.14.1", trt_version: str = "2.14.0"):
    features = {"dynamo_frontend": True, "torchscript_frontend": True} if features is None else features
    return Stack(torch_version, trt_version, "1.6.1.120", bool(features.get("tensorrt_rtx")), features)


# --- registries ------------------------------------------------------------------------------------------------


def test_each_ir_has_a_frontend_and_its_formats_are_registered() -> None:
    """Every IR maps to a frontend of that name; the formats it declares exist, the first is its default."""
    expected = {
        "dynamo": ("exported_program", "torchscript", "aot_inductor"),
        "ts": ("torchscript",),
        "fx": ("torchscript",),
    }
    assert set(FRONTENDS) == set(expected)
    for ir, formats in expected.items():
        frontend = FRONTENDS[ir]
        assert frontend.name == ir
        assert frontend.formats == formats
        assert frontend.default_format == formats[0]
        assert all(name in FORMATS for name in formats)
    assert {name: f.suffix for name, f in FORMATS.items()} == {
        "exported_program": ".pt2",
        "aot_inductor": ".pt2",
        "torchscript": ".ts",
    }


def test_output_format_auto_and_impossible_pairs() -> None:
    """'auto' is the IR's own format; a format the IR cannot write is refused and the IRs that can are named."""
    assert resolve_format("dynamo", "auto") == "exported_program"
    assert resolve_format("ts", "auto") == "torchscript"
    assert resolve_format("dynamo", "torchscript") == "torchscript"
    with pytest.raises(ConfigError, match="ir='ts' cannot write output_format='aot_inductor'.*needs ir='dynamo'"):
        resolve_format("ts", "aot_inductor")


# --- requirements ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ir", ["ts", "fx"])
def test_missing_frontend_names_feature_and_alternative(ir: str) -> None:
    """A frontend absent from the installed Torch-TensorRT is refused with its feature name and ir='dynamo'."""
    frontend = FRONTENDS[ir]
    with pytest.raises(MissingRequirementError) as error:
        _check_frontend_available(frontend, _stack({"dynamo_frontend": True}))
    message = str(error.value)
    assert frontend.feature in message
    assert "Use ir='dynamo'" in message
    assert "TensorRT-RTX builds" not in message


def test_missing_frontend_on_tensorrt_rtx_explains_why() -> None:
    """On a TensorRT-RTX build the error says those builds never include the frontend."""
    stack = _stack({"dynamo_frontend": True, "tensorrt_rtx": True})
    with pytest.raises(MissingRequirementError, match="TensorRT-RTX builds of Torch-TensorRT never include it"):
        _check_frontend_available(FRONTENDS["fx"], stack)


def test_available_frontend_passes() -> None:
    """A frontend whose feature is enabled passes the check; a missing dynamo frontend points to ir='ts'."""
    _check_frontend_available(FRONTENDS["ts"], _stack({"torchscript_frontend": True}))
    with pytest.raises(MissingRequirementError, match="Use ir='ts'"):
        _check_frontend_available(FRONTENDS["dynamo"], _stack({}))


@pytest.mark.parametrize(("torch_version", "trt_version"), [("2.11.0+cu130", "2.11.0"), ("2.14.1", "2.13.0")])
def test_older_stack_is_refused_with_the_minimum_versions(torch_version: str, trt_version: str) -> None:
    """Building on torch or Torch-TensorRT older than 2.14 fails at once and names the minimum versions."""
    stack = _stack(torch_version=torch_version, trt_version=trt_version)
    with pytest.raises(MissingRequirementError, match=r"needs torch >= 2.14 and Torch-TensorRT >= 2.14"):
        _check_frontend_available(FRONTENDS["dynamo"], stack)
    assert _stack().unsupported_reason() is None


@no_torch_tensorrt
def test_stack_errors_without_torch_tensorrt() -> None:
    """Without Torch-TensorRT and CUDA, the requirement checks say what is missing and how to install it."""
    with pytest.raises(MissingRequirementError, match=r"aitune-trt-aot\[tensorrt-rtx\]"):
        require_torch_tensorrt()
    if not torch.cuda.is_available():
        with pytest.raises(MissingRequirementError, match="No CUDA GPU"):
            require_cuda()
    assert "Torch-TensorRT not importable" in current_stack().describe()


# --- inputs the TorchScript and FX frontends accept ------------------------------------------------------------


def test_positional_tensors_are_accepted() -> None:
    """Positional tensors (and keywords left at None) are what the TorchScript/FX frontends compile."""
    x, y = torch.zeros(2, 3), torch.zeros(2, 4)
    _check_inputs(FRONTENDS["ts"], ((x, y), {"mask": None}))


def test_keyword_and_non_tensor_inputs_are_rejected() -> None:
    """Keyword tensors and non-tensor arguments are named in the error, which points to ir='dynamo'."""
    sample = ((torch.zeros(2, 3), 0.5, [torch.zeros(1)]), {"bias": torch.zeros(2)})
    with pytest.raises(UnsupportedInputsError, match="Use ir='dynamo'") as error:
        _check_inputs(FRONTENDS["fx"], sample)
    message = str(error.value)
    assert "ir='fx'" in message
    assert "keyword inputs ['bias']" in message
    assert "argument 1 (float)" in message and "argument 2 (list)" in message


def test_only_ts_and_fx_refuse_keyword_tensors() -> None:
    """The ts and fx frontends refuse keyword tensors; dynamo takes them."""
    sample = ((torch.zeros(2, 3),), {"bias": torch.zeros(2)})
    for ir in ("ts", "fx"):
        with pytest.raises(UnsupportedInputsError, match=f"ir='{ir}' compiles calls whose inputs are positional"):
            _check_inputs(FRONTENDS[ir], sample)
    _check_inputs(FRONTENDS["dynamo"], sample)


def test_settings_the_frontend_ignores_are_named(caplog: pytest.LogCaptureFixture) -> None:
    """Ts uses few CompilationSettings fields: every changed field it ignores is named in a warning."""
    settings = TorchTensorRTAotBackendConfig(
        ir="ts", compile_config={"min_block_size": 1, "optimization_level": 5, "use_fast_partitioner": False}
    ).compile_config
    with caplog.at_level(logging.WARNING, logger="aitune_trt_aot.plan"):
        _warn_dropped_settings(FRONTENDS["ts"], settings)
        _warn_dropped_settings(FRONTENDS["dynamo"], settings)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "optimization_level, use_fast_partitioner" in warnings[0]
    assert "min_block_size" not in warnings[0].split("(it uses")[0]


# --- demo ------------------------------------------------------------------------------------------------------


@no_nvidia_driver
def test_demo_exits_2_without_gpu(tmp_path: Path) -> None:
    """`python -m aitune_trt_aot.demo` on a GPU-less machine stops at once with exit code 2 and says why."""
    result = run_python("-m", "aitune_trt_aot.demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "No NVIDIA GPU" in result.stderr
    assert not (tmp_path / "demo").exists()


@no_nvidia_driver
def test_demo_script_exits_2_without_gpu() -> None:
    """`bash scripts/demo.sh` (the README's main job) refuses plainly, before installing anything."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "No NVIDIA GPU" in result.stderr
    assert not (REPO_ROOT / ".venv-gpu").exists()
