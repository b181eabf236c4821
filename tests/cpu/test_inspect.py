"""CPU: ``python -m aitune_trt_aot inspect`` on checkpoints and packages; missing or damaged files exit 1."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from aitune.torch.checkpoint.artifact import ArtifactPath

import aitune_trt_aot
from aitune_trt_aot import TorchTensorRTAotBackendConfig
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.inspect import main
from aitune_trt_aot.warm_up import WarmCall
from tests.support.entries import BUILT_FOR, fp16_mlp_entry
from tests.support.processes import run_python
from tests.support.tuning import tuned_eager_module


def _report(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["inspect", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _our_checkpoint(path: Path, **fields: Any) -> Path:
    """An .ait laid out as AITune writes one (state_dict.pt + artifacts), holding one entry of ours."""
    fields = {
        "coverage": Coverage(engines=2, tensorrt_ops=40, pytorch_ops=3),
        "warm_calls": [WarmCall.of(((torch.zeros(batch, 64),), {}), 0.25) for batch in (1, 16)],
    } | fields
    entry = fp16_mlp_entry(ArtifactPath(Path("."), "1/1/model.pt2"), **fields).to_dict("TorchTensorRTAotBackend")
    state = {"": {"type": "Module", "name": "mlp", "tuned_module": {"backends": [({}, entry)]}}}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("state_dict.pt", buffer.getvalue())
        archive.writestr("1/1/model.pt2", b"\0" * 3000)
    return path


def test_checkpoint_of_ours_lists_format_coverage_inputs_precision_and_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every field the issue asks for is printed for an entry of ours."""
    code, out, err = _report(_our_checkpoint(tmp_path / "model.ait"), capsys)
    assert code == 0, err
    assert "module 'mlp': TorchTensorRTAotBackend" in out
    assert "artifact: 1/1/model.pt2 (exported_program, 2.9 KiB)" in out
    assert "precision: autocast(float16); config: precision=fp16" in out
    assert "TensorRT: 2 TensorRT engines, 40 ops in TensorRT, 3 in PyTorch" in out
    assert "input x: [1..16, 64] float32" in out
    assert "built for: NVIDIA H200 (sm 9.0), TensorRT-RTX 1.6.1.120, Torch-TensorRT 2.14.0" in out
    assert "warm-up shapes: [(1, 64)] (0.25 s at build); [(16, 64)] (0.25 s at build); warm_up='auto'" in out


def test_a_quantized_checkpoint_shows_its_layers_by_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An INT8 entry: its precision, quantization config and how many layers run in INT8 vs 16/32 bit."""
    quantized = {
        "config": TorchTensorRTAotBackendConfig(precision="int8", quantization={"exclude": ["net.4"]}),
        "precision": "int8(rest float16)",
        "coverage": Coverage(engines=1, tensorrt_ops=30, pytorch_ops=0, layers={"int8": 2, "unquantized": 1}),
    }
    code, out, err = _report(_our_checkpoint(tmp_path / "int8.ait", **quantized), capsys)
    assert code == 0, err
    assert "precision: int8(rest float16); config: precision=int8,quantization(exclude=[net.4])" in out
    assert (
        "TensorRT: 1 TensorRT engine, 30 ops in TensorRT, 0 in PyTorch; layers: 2 int8, 1 unquantized (16/32-bit)"
        in out
    )


def test_real_checkpoint_of_another_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint AITune wrote on the CPU (eager backend) lists its backend, through the command line too."""
    module = tuned_eager_module(torch.nn.Linear(4, 4), "lin")
    path = aitune_trt_aot.save(module, tmp_path / "eager.ait")
    code, out, err = _report(path, capsys)
    assert code == 0, err
    assert "AITune checkpoint" in out and "module 'lin': TorchEagerBackend" in out
    result = run_python("-m", "aitune_trt_aot", "inspect", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "module 'lin': TorchEagerBackend" in result.stdout


def test_package_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A .pt2 package's recorded inputs, built-in values, coverage and build are printed without a GPU."""
    metadata = {
        "aitune_trt_aot.inputs": json.dumps([{"dims": [[1, 16], [64, 64]], "dtype": "torch.float32"}]),
        "aitune_trt_aot.constants": json.dumps({"scale": 0.5}),
        "aitune_trt_aot.coverage": json.dumps({"engines": 1, "tensorrt_ops": 5, "pytorch_ops": 0}),
        "aitune_trt_aot.built_for": json.dumps(BUILT_FOR),
        "aitune_trt_aot.kernel_specialization": "auto",
        "AOTI_DEVICE_KEY": "cuda",
        "AOTI_COMPUTE_CAPABILITY": "90",
    }
    path = tmp_path / "model.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data/aotinductor/model/abc.wrapper_metadata.json", json.dumps(metadata))
        archive.writestr("model/data/constants/custom_obj_0", b"engine")
    code, out, err = _report(path, capsys)
    assert code == 0, err
    assert "1 embedded engine object(s)" in out
    assert "TensorRT: 1 TensorRT engine, 5 ops in TensorRT, 0 in PyTorch" in out
    assert "input tensor 0: [1..16, 64] float32" in out
    assert "built-in values: {'scale': 0.5}" in out
    assert "compiled for compute capability 90, device cuda" in out
    assert "built for: NVIDIA H200 (sm 9.0)" in out
    assert "kernel specialization: auto (load_pt2 applies it)" in out


@pytest.mark.parametrize("suffix", [".ait", ".pt2"])
def test_missing_or_damaged_file_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """Missing, cut or non-zip files exit 1 with a one-line reason, never a traceback."""
    code, _, err = _report(tmp_path / f"missing{suffix}", capsys)
    assert code == 1 and err.startswith("error: No ") and err.count("\n") == 1
    source = _our_checkpoint(tmp_path / "whole.ait")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    code, _, err = _report(cut, capsys)
    assert code == 1 and "damaged" in err and err.count("\n") == 1
