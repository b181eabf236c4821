"""CPU: the device an artifact is loaded on: one this machine has, its engines there, never a silent other device."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import ArtifactError, Pt2LoadError, engine_runtime, placement
from aitune_trt_aot.activation import activate
from aitune_trt_aot.pipeline import BuildJob, run_build
from aitune_trt_aot.placement import PinnedRunner, refuse_engines_elsewhere, resolve_device
from aitune_trt_aot.pt2.runtime import load_pt2
from tests.support.fake_build import CPU_TOOLKIT, TorchSaveFormat, TracedFrontend, register_fakes
from tests.support.models import MLP
from tests.support.recording import record, sample_store

# What Torch-TensorRT 2.14's C++ engine says of itself (TRTEngine::to_str), cut to the line that matters here.
ENGINE_DESCRIPTION = """Torch-TensorRT TensorRT Engine:
  Name: _run_on_acc_0_engine
  Device: Device(ID: {index}, Name: NVIDIA H100 80GB HBM3, SM Capability: 9.0, Type: GPU)
  Hardware Compatibility: Disabled
"""


class _Engine:
    def __init__(self, index: int) -> None:
        self.index = index

    def __str__(self) -> str:
        return ENGINE_DESCRIPTION.format(index=self.index)


def test_a_device_this_machine_does_not_have_is_refused_naming_the_ones_it_has() -> None:
    with pytest.raises(ArtifactError) as raised:
        resolve_device("cuda:1", cuda_devices=1)
    message = str(raised.value)
    assert message.startswith("Cannot load the TensorRT engines on cuda:1: this machine has 1 CUDA device (cuda:0).")
    assert "device_map={'': 'cuda:0'}" in message and "torch.cuda.set_device(local_rank)" in message
    with pytest.raises(Pt2LoadError, match=r"cuda:4: this machine has 2 CUDA devices \(cuda:0, cuda:1\)"):
        resolve_device(torch.device("cuda", 4), cuda_devices=2, error=Pt2LoadError)


def test_a_device_without_index_is_the_current_one_and_others_pass_unchanged() -> None:
    assert resolve_device("cuda", cuda_devices=4, current=2) == torch.device("cuda", 2)
    assert resolve_device(None, cuda_devices=4, current=3) == torch.device("cuda", 3)
    assert resolve_device("cuda:1", cuda_devices=2) == torch.device("cuda", 1)
    assert resolve_device("cpu", cuda_devices=0) == torch.device("cpu")
    # Without CUDA at all the device stands: the toolkit then says CUDA is what is missing.
    assert resolve_device("cuda:1", cuda_devices=0) == torch.device("cuda", 1)


def test_engines_placed_on_another_device_are_refused() -> None:
    """Engines report their device; one that is not the requested device is an ArtifactError, unknown ones pass."""
    assert [engine_runtime.engine_device(_Engine(i)) for i in (0, 3)] == [0, 3]
    assert engine_runtime.engine_device(object()) is None
    refuse_engines_elsewhere([1, 1, None], torch.device("cuda", 1), "model.pt2 (exported_program)")
    with pytest.raises(ArtifactError) as raised:
        refuse_engines_elsewhere([0, 1], torch.device("cuda", 1), "model.pt2 (exported_program)")
    assert str(raised.value).startswith(
        "model.pt2 (exported_program) was loaded for cuda:1, but Torch-TensorRT placed its TensorRT engines on cuda:0"
    )


def test_the_pinned_runner_refuses_outputs_on_another_device_on_its_first_call() -> None:
    """Outputs on another device raise instead of being handed back; host outputs are the model's own."""
    cpu = torch.device("cpu")
    assert PinnedRunner(lambda x: (x, [x + 1]), cpu, "m")(torch.ones(2))[1][0].tolist() == [2.0, 2.0]
    on_meta = PinnedRunner(lambda x: {"y": torch.empty(2, device="meta")}, cpu, "model.ts (torchscript)")
    with pytest.raises(ArtifactError, match=r"\(torchscript\) was loaded for cpu, but its outputs are on meta"):
        on_meta(torch.ones(2))
    assert placement.misplaced_outputs([torch.ones(1)], torch.device("cuda", 1)) == [], "host tensors are allowed"
    assert placement.needs_pinning(torch.device("cuda", 0), cuda_devices=2)
    assert not placement.needs_pinning(torch.device("cuda", 0), cuda_devices=1)


def test_activation_refuses_a_device_the_machine_lacks_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact asked for on cuda:1 of a one-GPU machine: ArtifactError, and the format never reads the file."""
    artifact_format = register_fakes(monkeypatch, TracedFrontend(), TorchSaveFormat())
    module = MLP().eval()
    calls = [((torch.randn(batch, 64),), {}) for batch in (1, 4)]
    store = sample_store(calls, tmp_path)
    job = BuildJob(_config(), module, record(module, calls), store, torch.device("cpu"), tmp_path)
    entry = run_build(job, CPU_TOOLKIT).entry
    loads = len(artifact_format.loads)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ArtifactError, match="Cannot load the TensorRT engines on cuda:1: this machine has 1 CUDA"):
        activate(entry, torch.device("cuda", 1), CPU_TOOLKIT)
    assert len(artifact_format.loads) == loads


def test_load_pt2_refuses_a_device_the_machine_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "model.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("model/data/aotinductor/model/x.wrapper_metadata.json", "{}")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(Pt2LoadError, match="Cannot load the TensorRT engines on cuda:1: this machine has 1 CUDA"):
        load_pt2(package, device="cuda:1")


def _config():
    from aitune_trt_aot import TorchTensorRTAotBackendConfig

    return TorchTensorRTAotBackendConfig(ir="cpu_trace")
