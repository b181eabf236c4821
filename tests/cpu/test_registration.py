"""CPU: the backend's registration with AITune, its checkpoint entries, and clear errors without a GPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aitune.torch as ait
import pytest
import torch
from aitune.torch.backend.backend import Backend, BackendState
from aitune.torch.checkpoint.artifact import ArtifactPath
from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.sample_metadata import SampleMetadata
from aitune.torch.module.tuned_module import TunedModule

import aitune_trt_aot
from aitune_trt_aot import (
    ArtifactError,
    MissingRequirementError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
)
from aitune_trt_aot.checkpoint import FORMAT_VERSION, CheckpointEntry, CheckpointWriter
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.files import file_digest
from aitune_trt_aot.stack import torch_tensorrt_or_none
from tests.support.entries import BUILT_FOR, fp16_mlp_entry
from tests.support.models import MLP
from tests.support.processes import run_python

NAME = "TorchTensorRTAotBackend"


def _resolved() -> type:
    """The class AITune picks for a checkpoint entry named TorchTensorRTAotBackend (as TunedModule.from_dict does)."""
    return {c.__name__: c for c in Backend.__subclasses__()}[NAME]


def _state(root: Path, checksum: str | None = None) -> CheckpointEntry:
    return fp16_mlp_entry(ArtifactPath(root, "model.pt2"), checksum=checksum)


def _builtin_entry(root: Path) -> dict[str, Any]:
    """An entry as AITune's built-in TorchTensorRTAotBackend writes it."""
    return {"type": NAME, "exported_model_path": ArtifactPath(root, "model.pt2"), "device": torch.device("cuda:0")}


# --- registration ----------------------------------------------------------------------------------------------


def test_aitune_resolves_the_name_to_this_package() -> None:
    """After importing the package, AITune's lookup by name gives this package's class."""
    assert _resolved() is aitune_trt_aot.TorchTensorRTAotBackend
    assert _resolved().__module__ == "aitune_trt_aot.backend"


def test_builtin_backend_is_still_a_distinct_subclass() -> None:
    """AITune's own class of the same name still exists; it is simply shadowed in the lookup."""
    from aitune.torch.backend import TorchTensorRTAotBackend as Builtin

    assert Builtin is not TorchTensorRTAotBackend
    assert Builtin in Backend.__subclasses__()
    assert TorchTensorRTAotBackend in Backend.__subclasses__()


def test_direct_subclass_of_backend() -> None:
    """Only direct subclasses of Backend are found by AITune, so ours must be one."""
    assert TorchTensorRTAotBackend.__bases__ == (Backend,)


def test_constructing_needs_no_cuda() -> None:
    """The backend can be created and described on a machine without GPU or Torch-TensorRT."""
    backend = TorchTensorRTAotBackend()
    assert backend.state == BackendState.INIT
    assert backend.config == TorchTensorRTAotBackendConfig()
    assert backend.describe() == f"{NAME}()"
    assert backend.key() == f"{NAME}_{TorchTensorRTAotBackendConfig().key()}"
    assert backend.artifact_path is None and backend.precision is None
    ts = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir="ts"))
    assert ts.describe() == f"{NAME}(ir=ts)"
    assert ts.key() != backend.key()


def test_builtin_config_class_is_rejected() -> None:
    """Passing AITune's built-in config class is a TypeError naming the class to use."""
    from aitune.torch.backend.torch_tensorrt_aot_backend import TorchTensorRTAotBackendConfig as BuiltinConfig

    with pytest.raises(TypeError, match="aitune_trt_aot.TorchTensorRTAotBackendConfig") as error:
        TorchTensorRTAotBackend(BuiltinConfig())  # type: ignore[arg-type]
    assert "aitune.torch.backend.torch_tensorrt_aot_backend" in str(error.value)


def test_checkpoint_marker_imports_the_package(tmp_path: Path) -> None:
    """Unpickling an entry's CheckpointWriter in a process that imported only aitune.torch registers our class."""
    path = tmp_path / "entry.pt"
    torch.save({"type": NAME, "writer": CheckpointWriter()}, path)
    code = """
import importlib, json, sys
try:
    import tensorrt  # noqa: F401
except ImportError:  # TensorRT-RTX installs the module as tensorrt_rtx
    sys.modules["tensorrt"] = importlib.import_module("tensorrt_rtx")
import torch
from aitune.torch.backend.backend import Backend

def resolved():
    return {c.__name__: c for c in Backend.__subclasses__()}["TorchTensorRTAotBackend"].__module__

before, imported_before = resolved(), "aitune_trt_aot" in sys.modules
entry = torch.load(sys.argv[1], weights_only=False)
print(json.dumps({"before": before, "imported_before": imported_before, "after": resolved(),
                  "writer": type(entry["writer"]).__module__}))
"""
    result = run_python("-c", code, str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "before": "aitune.torch.backend.torch_tensorrt_aot_backend",
        "imported_before": False,
        "after": "aitune_trt_aot.backend",
        "writer": "aitune_trt_aot.checkpoint",
    }


# --- checkpoint entries ----------------------------------------------------------------------------------------


def test_entry_round_trip(tmp_path: Path) -> None:
    """An entry survives to_dict, torch.save/torch.load and from_dict with every field intact."""
    state = _state(tmp_path)
    entry = state.to_dict(NAME)
    assert entry["type"] == NAME
    assert entry["writer"] == CheckpointWriter(version=FORMAT_VERSION)
    torch.save(entry, tmp_path / "entry.pt")
    restored = CheckpointEntry.from_dict(torch.load(tmp_path / "entry.pt", weights_only=False))
    assert restored.config == state.config
    assert restored.artifact == state.artifact
    assert restored.artifact_format == "exported_program"
    assert restored.device == torch.device("cuda:0")
    assert restored.precision == "autocast(float16)"
    assert restored.shape_guard is not None
    assert restored.shape_guard.to_dict() == state.shape_guard.to_dict()
    assert restored.coverage == Coverage(engines=1, tensorrt_ops=5, pytorch_ops=0)
    assert restored.built_for == BUILT_FOR


def test_backend_from_our_entry(tmp_path: Path) -> None:
    """from_dict gives a backend ready to deploy, with the stored config, artifact and precision."""
    backend = TorchTensorRTAotBackend.from_dict(None, _state(tmp_path).to_dict(NAME))
    assert backend.state == BackendState.CHECKPOINT_LOADED
    assert backend.config.precision == "fp16"
    assert backend.coverage == Coverage(engines=1, tensorrt_ops=5, pytorch_ops=0)
    assert backend.describe() == f"{NAME}(precision=fp16; 1 TensorRT engine, 5 ops in TensorRT, 0 in PyTorch)"
    assert backend.artifact_path == tmp_path / "model.pt2"
    assert backend.precision == "autocast(float16)"
    assert backend.device == torch.device("cuda:0")
    assert backend.to_dict()["artifact"] == ArtifactPath(tmp_path, "model.pt2")


def test_backend_from_builtin_entry(tmp_path: Path) -> None:
    """An entry written by AITune's built-in backend loads as an exported program with the default config."""
    backend = TorchTensorRTAotBackend.from_dict(None, _builtin_entry(tmp_path))
    assert backend.state == BackendState.CHECKPOINT_LOADED
    assert backend.artifact_format == "exported_program"
    assert backend._entry is not None and backend._entry.shape_guard is None
    assert backend.coverage is None
    assert backend.artifact_path == tmp_path / "model.pt2"
    assert backend.config == TorchTensorRTAotBackendConfig()
    assert "built-in" in (backend.precision or "")


def test_tuned_module_resolves_entries_to_this_package(tmp_path: Path) -> None:
    """AITune's TunedModule.from_dict builds our backend for a TorchTensorRTAotBackend entry."""
    module = MLP()
    metadata = SampleMetadata.from_inputs({"x": torch.zeros(2, 64)})
    state = {
        TunedModule.BACKENDS_KEY: [(metadata.to_dict(), _builtin_entry(tmp_path))],
        TunedModule.CHECK_GRAPH_KEY: False,
        TunedModule.IS_ANY_JIT_KEY: False,
        TunedModule.MODULE_NAME_KEY: "mlp",
        TunedModule.FORWARD_SIGNATURE_KEY: ForwardSignature.from_callable(module.forward).to_dict(),
    }
    (backend,) = TunedModule.from_dict(module, state).backends.values()
    assert type(backend) is TorchTensorRTAotBackend
    assert backend.state == BackendState.CHECKPOINT_LOADED


def test_damaged_entry_is_rejected(tmp_path: Path) -> None:
    """An entry with neither format's fields, or with a plain path for the artifact, is a clear ArtifactError."""
    with pytest.raises(ArtifactError, match="damaged") as error:
        TorchTensorRTAotBackend.from_dict(None, {"type": NAME, "something": 1})
    assert "something" in str(error.value)
    entry = _state(tmp_path).to_dict(NAME) | {"artifact": str(tmp_path / "model.pt2")}
    with pytest.raises(ArtifactError, match="'artifact' should be an ArtifactPath"):
        TorchTensorRTAotBackend.from_dict(None, entry)


def test_newer_format_asks_to_upgrade(tmp_path: Path) -> None:
    """An entry from a newer format version says to upgrade aitune-trt-aot."""
    entry = _state(tmp_path).to_dict(NAME) | {"writer": CheckpointWriter(version=FORMAT_VERSION + 1)}
    with pytest.raises(ArtifactError, match="Upgrade aitune-trt-aot"):
        TorchTensorRTAotBackend.from_dict(None, entry)


def test_entry_of_the_torch_2_11_release_asks_to_retune(tmp_path: Path) -> None:
    """An entry written by aitune-trt-aot 0.1 (format 1, torch 2.11 stack) cannot run on 2.14: re-tune."""
    entry = _state(tmp_path).to_dict(NAME) | {
        "writer": CheckpointWriter(version=1),
        "artifact_format": "pickled_module",
    }
    with pytest.raises(ArtifactError, match="format 1.*torch 2.11.*Re-run ait.tune"):
        TorchTensorRTAotBackend.from_dict(None, entry)


def test_entry_of_another_type_is_rejected(tmp_path: Path) -> None:
    """from_dict refuses an entry whose type names another backend."""
    with pytest.raises(ArtifactError, match="'TorchInductorAotBackend' is not a TorchTensorRTAotBackend"):
        TorchTensorRTAotBackend.from_dict(None, _builtin_entry(tmp_path) | {"type": "TorchInductorAotBackend"})


# --- errors without a GPU --------------------------------------------------------------------------------------


def test_unbuilt_backend_cannot_run_or_save() -> None:
    """Activating, running or saving a backend that was never built fails with a RuntimeError."""
    backend = TorchTensorRTAotBackend()
    with pytest.raises(RuntimeError, match="should be built first"):
        backend.activate()
    with pytest.raises(RuntimeError, match="should be activated first"):
        backend.infer(torch.zeros(1, 64))
    with pytest.raises(RuntimeError, match="must be built first"):
        backend.to_dict()


def test_deploy_with_missing_artifact_names_the_path(tmp_path: Path) -> None:
    """A checkpoint whose artifact file is gone fails at deploy with the missing path (before any CUDA check)."""
    backend = TorchTensorRTAotBackend.from_dict(None, _builtin_entry(tmp_path))
    with pytest.raises(ArtifactError, match="is missing") as error:
        backend.deploy(torch.device("cuda"))
    assert str(tmp_path / "model.pt2") in str(error.value)
    assert backend.state == BackendState.CHECKPOINT_LOADED


def test_damaged_artifact_is_refused_before_loading(tmp_path: Path) -> None:
    """A flipped byte in the engine file no longer matches the checksum recorded at save: ArtifactError, no load."""
    artifact = tmp_path / "model.pt2"
    artifact.write_bytes(bytes(range(256)) * 16)
    backend = TorchTensorRTAotBackend.from_dict(None, _state(tmp_path, file_digest(artifact)).to_dict(NAME))
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0x01
    artifact.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.pt2 is damaged.*Restore the .ait checkpoint"):
        backend.deploy(torch.device("cuda"))


def test_artifact_built_elsewhere_is_refused_naming_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engines built for another GPU architecture or TensorRT release are refused before deserialisation."""
    from aitune_trt_aot import compat

    here = BUILT_FOR | {"gpu": "NVIDIA A100", "compute_capability": "8.0", "tensorrt": "1.7.0.1"}
    monkeypatch.setattr(compat, "build_environment", lambda device=None: here)
    problem = compat.incompatibility(BUILT_FOR)
    assert problem is not None
    assert "built for NVIDIA H200 (sm 9.0), TensorRT-RTX 1.6.1.120" in problem
    assert "this machine has NVIDIA A100 (sm 8.0), TensorRT-RTX 1.7.0.1" in problem
    assert "differs in: compute_capability, tensorrt" in problem
    assert compat.incompatibility(None) is None
    unknown_here = BUILT_FOR | {"compute_capability": None, "tensorrt": None, "torch_tensorrt": None}
    monkeypatch.setattr(compat, "build_environment", lambda device=None: unknown_here)
    assert compat.incompatibility(BUILT_FOR) is None  # nothing known here to compare with


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_deploy_without_cuda_says_so(tmp_path: Path) -> None:
    """With the artifact present but no CUDA GPU, deploy fails with MissingRequirementError about CUDA."""
    (tmp_path / "model.pt2").write_bytes(b"not read")
    backend = TorchTensorRTAotBackend.from_dict(None, _builtin_entry(tmp_path))
    with pytest.raises(MissingRequirementError, match="No CUDA GPU"):
        backend.deploy(torch.device("cuda"))


@pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without Torch-TensorRT")
def test_build_without_torch_tensorrt_says_how_to_install(tmp_path: Path) -> None:
    """Building on a machine without Torch-TensorRT fails early with the install command; the config is saved."""
    backend = TorchTensorRTAotBackend()
    with pytest.raises(MissingRequirementError, match="pip install aitune-trt-aot"):
        backend.build(MLP(), None, None, torch.device("cuda"), tmp_path)  # type: ignore[arg-type]
    assert json.loads((tmp_path / "config.json").read_text()) == TorchTensorRTAotBackendConfig().to_dict()
    assert backend.state == BackendState.INIT


def test_tuning_on_cpu_is_refused() -> None:
    """ait.tune on the CPU with this backend fails: AITune refuses a device the backend does not support."""
    strategy = ait.OneBackendStrategy(backend=TorchTensorRTAotBackend())
    strategy.enable_find_max_batch_size(False)
    strategy.enable_performance_validation(False)
    tuned = ait.Module(MLP(8, 16).eval(), "mlp-cpu", strategy=strategy)
    data = [torch.randn(8), torch.randn(8)]
    with pytest.raises(ValueError, match="Device cpu is not supported by the backend TorchTensorRTAotBackend"):
        ait.tune(tuned, data, batch_sizes=[1, 2], device="cpu", ignore_failing_modules=False)
