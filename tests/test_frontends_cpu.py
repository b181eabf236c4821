"""CPU: frontend and artifact-format registries, requirement errors, input checks, and the demo without a GPU."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from aitune_trt_aot import CompilationSettings, MissingRequirementError, UnsupportedInputsError
from aitune_trt_aot.formats import FORMATS, get_format
from aitune_trt_aot.frontends import FRONTENDS, CompileRequest, get_frontend
from aitune_trt_aot.frontends.base import positional_tensor_inputs
from aitune_trt_aot.stack import require_cuda, require_torch_tensorrt, stack_description, torch_tensorrt_or_none
from tests.conftest import run_python

no_torch_tensorrt = pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without it")


def _request(args: tuple, kwargs: dict[str, Any]) -> CompileRequest:
    """A compile request carrying only what the input check reads."""
    return CompileRequest(
        module=nn.Identity(),
        graph_spec=None,  # type: ignore[arg-type]
        sample=(args, kwargs),
        device=torch.device("cpu"),
        settings=CompilationSettings(),
        options={},
        torch_tensorrt=None,  # type: ignore[arg-type]
    )


# --- registries ------------------------------------------------------------------------------------------------


def test_each_ir_has_a_frontend_and_a_format() -> None:
    """Every IR maps to a frontend of that name, whose artifact formats (standard TensorRT, RTX) are registered."""
    expected = {
        "dynamo": {False: "exported_program", True: "pickled_module"},
        "ts": {False: "torchscript", True: "torchscript"},
        "fx": {False: "pickled_module", True: "pickled_module"},
    }
    assert set(FRONTENDS) == set(expected)
    for ir, formats in expected.items():
        frontend = get_frontend(ir)
        assert frontend.name == ir
        for tensorrt_rtx, format_name in formats.items():
            assert frontend.artifact_format(tensorrt_rtx) == format_name, (ir, tensorrt_rtx)
    assert {name: get_format(name).suffix for name in FORMATS} == {
        "exported_program": ".pt2",
        "aot_inductor": ".pt2",
        "torchscript": ".ts",
        "pickled_module": ".pt",
    }


def test_unknown_format_lists_known_ones() -> None:
    """An unknown artifact format name is a ValueError listing the registered formats."""
    with pytest.raises(ValueError, match="Unknown artifact format 'onnx'") as error:
        get_format("onnx")
    for name in FORMATS:
        assert name in str(error.value)


# --- requirements ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ir", ["ts", "fx"])
def test_missing_frontend_names_feature_and_alternative(ir: str) -> None:
    """A frontend absent from the installed Torch-TensorRT is refused with its feature name and ir='dynamo'."""
    frontend = get_frontend(ir)
    with pytest.raises(MissingRequirementError) as error:
        frontend.check_available({"dynamo_frontend": True})
    message = str(error.value)
    assert frontend.feature in message
    assert "Use ir='dynamo'" in message
    assert "TensorRT-RTX" not in message


def test_missing_frontend_on_tensorrt_rtx_explains_why() -> None:
    """On a TensorRT-RTX build the error says those builds never include the frontend."""
    with pytest.raises(MissingRequirementError, match="TensorRT-RTX builds of Torch-TensorRT never include it"):
        get_frontend("ts").check_available({"dynamo_frontend": True, "tensorrt_rtx": True})


def test_available_frontend_passes() -> None:
    """A frontend whose feature is enabled passes the check; a missing dynamo frontend points to ir='ts'."""
    get_frontend("ts").check_available({"torchscript_frontend": True})
    with pytest.raises(MissingRequirementError, match="Use ir='ts'"):
        get_frontend("dynamo").check_available({})


@no_torch_tensorrt
def test_stack_errors_without_torch_tensorrt() -> None:
    """Without Torch-TensorRT and CUDA, the requirement checks say what is missing and how to install it."""
    with pytest.raises(MissingRequirementError, match=r"aitune-trt-aot\[tensorrt-rtx\]"):
        require_torch_tensorrt()
    if not torch.cuda.is_available():
        with pytest.raises(MissingRequirementError, match="No CUDA GPU"):
            require_cuda()
    assert "Torch-TensorRT not importable" in stack_description()


# --- inputs the TorchScript and FX frontends accept ------------------------------------------------------------


def test_positional_tensors_are_accepted() -> None:
    """Positional tensors (and keywords left at None) are what the TorchScript/FX frontends compile."""
    x, y = torch.zeros(2, 3), torch.zeros(2, 4)
    assert positional_tensor_inputs(_request((x, y), {"mask": None}), "ts") == (x, y)


def test_keyword_and_non_tensor_inputs_are_rejected() -> None:
    """Keyword tensors and non-tensor arguments are named in the error, which points to ir='dynamo'."""
    request = _request((torch.zeros(2, 3), 0.5, [torch.zeros(1)]), {"bias": torch.zeros(2)})
    with pytest.raises(UnsupportedInputsError, match="Use ir='dynamo'") as error:
        positional_tensor_inputs(request, "fx")
    message = str(error.value)
    assert "ir='fx'" in message
    assert "keyword inputs ['bias']" in message
    assert "argument 1 (float)" in message and "argument 2 (list)" in message


# --- demo ------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
    reason="checks the demo on a machine without an NVIDIA driver",
)
def test_demo_exits_2_without_gpu(repo_root: Path, tmp_path: Path) -> None:
    """`python -m aitune_trt_aot.demo` on a GPU-less machine stops at once with exit code 2 and says why."""
    result = run_python(repo_root, "-m", "aitune_trt_aot.demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "No NVIDIA GPU" in result.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists(),
    reason="checks the README's main-job command on a machine without an NVIDIA driver",
)
def test_demo_script_exits_2_without_gpu(repo_root: Path) -> None:
    """`bash scripts/demo.sh` (the README's main job) refuses plainly, before installing anything."""
    result = subprocess.run(
        ["bash", str(repo_root / "scripts" / "demo.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "No NVIDIA GPU" in result.stderr
    assert not (repo_root / ".venv-gpu").exists()


def test_frontends_check_inputs_before_any_work() -> None:
    """The ts and fx frontends refuse keyword tensors in check_inputs, before other refusals; dynamo takes them."""
    request = _request((torch.zeros(2, 3),), {"bias": torch.zeros(2)})
    for ir in ("ts", "fx"):
        with pytest.raises(UnsupportedInputsError, match=f"ir='{ir}' compiles calls whose inputs are positional"):
            get_frontend(ir).check_inputs(request)
    get_frontend("dynamo").check_inputs(request)
