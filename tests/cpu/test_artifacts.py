"""CPU: checksums, checkpoint entries' optional build facts, the checks before an artifact loads, save leftovers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from aitune.torch.backend.backend import BackendState
from aitune.torch.checkpoint.artifact import ArtifactPath

from aitune_trt_aot import (
    ArtifactError,
    MissingRequirementError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    compat,
)
from aitune_trt_aot.checkpoint import FORMAT_VERSION, CheckpointEntry, CheckpointWriter
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.files import bytes_digest, file_digest
from aitune_trt_aot.safe_save import leftovers
from aitune_trt_aot.stack import torch_tensorrt_or_none
from aitune_trt_aot.warm_up import WarmCall
from tests.support.entries import BUILT_FOR, mlp_guard

NAME = "TorchTensorRTAotBackend"
ENGINE_BYTES = bytes(range(256)) * 64

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")


def _entry(root: Path, **fields: object) -> CheckpointEntry:
    """An entry of ours for ``root/model.pt2``, with only the required fields unless more are given."""
    required = {"config": TorchTensorRTAotBackendConfig(), "precision": "fp32"}
    return CheckpointEntry(
        artifact=ArtifactPath(root, "model.pt2"),
        artifact_format="exported_program",
        device=torch.device("cuda:0"),
        shape_guard=mlp_guard(),
        **(required | fields),  # type: ignore[arg-type]
    )


def _loaded(root: Path, **fields: object) -> TorchTensorRTAotBackend:
    """A backend as ait.load leaves it (entry read back from its stored form)."""
    return TorchTensorRTAotBackend.from_dict(None, _entry(root, **fields).to_dict(NAME))


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """An engine file whose bytes the entries record."""
    path = tmp_path / "model.pt2"
    path.write_bytes(ENGINE_BYTES)
    return path


# --- file_digest -------------------------------------------------------------------------------------------------


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    """sha256:<hex> of the whole file, read in blocks (a file over one 4 MiB block included); empty files too."""
    small, large, empty = tmp_path / "small.bin", tmp_path / "large.bin", tmp_path / "empty.bin"
    small.write_bytes(b"engine")
    large_bytes = ENGINE_BYTES * 300  # ~4.9 MB: more than one block
    large.write_bytes(large_bytes)
    empty.write_bytes(b"")
    assert file_digest(small) == "sha256:" + hashlib.sha256(b"engine").hexdigest()
    assert file_digest(large) == "sha256:" + hashlib.sha256(large_bytes).hexdigest()
    assert file_digest(empty) == "sha256:" + hashlib.sha256(b"").hexdigest()
    large.write_bytes(large_bytes[:-1] + b"\x00")
    assert file_digest(large) != "sha256:" + hashlib.sha256(large_bytes).hexdigest(), "the last byte counts"


def test_bytes_digest_is_what_a_file_of_those_bytes_hashes_to(tmp_path: Path) -> None:
    """The kernel cache is hashed from the bytes written, not read back: both forms must agree."""
    for data in (b"", b"kernels", ENGINE_BYTES * 300):
        path = tmp_path / "kernels.bin"
        path.write_bytes(data)
        assert bytes_digest(data) == file_digest(path)


# --- checkpoint entries ------------------------------------------------------------------------------------------


def test_new_entry_fields_are_optional_and_always_stored(tmp_path: Path) -> None:
    """coverage, checksum and built_for default to None, are written as keys, and read back as None."""
    entry = _entry(tmp_path)
    assert (entry.coverage, entry.checksum, entry.built_for) == (None, None, None)
    stored = entry.to_dict(NAME)
    assert {"coverage", "checksum", "built_for"} <= set(stored)
    assert stored["writer"] == CheckpointWriter(package="aitune_trt_aot", version=FORMAT_VERSION)
    assert FORMAT_VERSION == 5
    assert stored["kernel_cache"] is None and stored["kernel_cache_checksum"] is None and stored["warm_calls"] == []
    restored = CheckpointEntry.from_dict(stored)
    assert (restored.coverage, restored.checksum, restored.built_for) == (None, None, None)
    optional = ("coverage", "checksum", "built_for", "precision", "kernel_cache", "kernel_cache_checksum", "warm_calls")
    for key in optional:
        del stored[key]  # an entry that lacks the optional keys
    restored = CheckpointEntry.from_dict(stored)
    assert (restored.coverage, restored.checksum, restored.built_for) == (None, None, None)
    assert (restored.kernel_cache, restored.kernel_cache_checksum) == (None, None)
    assert restored.precision == "unknown" and restored.warm_calls == []


def test_warm_calls_round_trip_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    """The self-check's calls to warm up with are stored as plain data; one that cannot be read is an ArtifactError."""
    warm = WarmCall.of(((torch.zeros(4, 64),), {"scale": 0.5}), 0.0123)
    stored = _entry(tmp_path, warm_calls=[warm]).to_dict(NAME)
    assert json.loads(json.dumps(stored["warm_calls"])) == stored["warm_calls"], "JSON-safe, for the build cache"
    assert CheckpointEntry.from_dict(stored).warm_calls == [warm]
    stored["warm_calls"] = [{"leaves": []}]
    with pytest.raises(ArtifactError, match="warm-up calls are unreadable.*re-run ait.tune and save again"):
        CheckpointEntry.from_dict(stored)


def test_kernel_cache_is_an_artifact_of_the_entry(tmp_path: Path) -> None:
    """The kernel cache file travels as an ArtifactPath (AITune copies it into the .ait) with its checksum."""
    kernels = ArtifactPath(tmp_path, "kernels.bin")
    digest = "sha256:" + "1" * 64
    stored = _entry(tmp_path, kernel_cache=kernels, kernel_cache_checksum=digest).to_dict(NAME)
    assert stored["kernel_cache"] == kernels
    restored = CheckpointEntry.from_dict(stored)
    assert (restored.kernel_cache, restored.kernel_cache_checksum) == (kernels, digest)
    stored["kernel_cache"] = str(kernels.path)
    with pytest.raises(ArtifactError, match="'kernel_cache' should be an ArtifactPath"):
        CheckpointEntry.from_dict(stored)


def test_entries_of_format_2_are_still_read(tmp_path: Path) -> None:
    """Format 2 (no kernel cache, no kernel_specialization, no warm-up) loads; format 1 (torch 2.11) is refused."""
    stored = _entry(tmp_path).to_dict(NAME)
    for key in ("kernel_cache", "kernel_cache_checksum", "warm_calls"):
        del stored[key]
    del stored["config"]["kernel_specialization"], stored["config"]["warm_up"]
    stored["writer"] = CheckpointWriter(version=2)
    restored = CheckpointEntry.from_dict(stored)
    assert restored.kernel_cache is None and restored.warm_calls == []
    assert (restored.config.kernel_specialization, restored.config.warm_up) == ("auto", "auto")


def test_entries_of_format_4_are_still_read(tmp_path: Path) -> None:
    """Format 4 (no quantization in the config, no layer counts in the coverage) loads as a build without them."""
    stored = _entry(tmp_path, coverage=Coverage(1, 5, 0)).to_dict(NAME)
    del stored["config"]["quantization"]
    del stored["coverage"]["layers"]
    stored["writer"] = CheckpointWriter(version=4)
    restored = CheckpointEntry.from_dict(stored)
    assert restored.config == TorchTensorRTAotBackendConfig() and restored.coverage == Coverage(1, 5, 0)


def test_a_quantized_entry_round_trips(tmp_path: Path) -> None:
    """An INT8 build's config (its quantization) and coverage (its layers by precision) come back as stored."""
    config = TorchTensorRTAotBackendConfig(precision="int8", quantization={"exclude": ["head"], "min_cosine": 0.98})
    coverage = Coverage(1, 40, 0, layers={"int8": 12, "unquantized": 2})
    entry = _entry(tmp_path, config=config, coverage=coverage, precision="int8(rest float16)")
    restored = CheckpointEntry.from_dict(entry.to_dict(NAME))
    assert (restored.config, restored.coverage, restored.precision) == (config, coverage, "int8(rest float16)")
    assert restored.coverage.describe().endswith("; layers: 12 int8, 2 unquantized (16/32-bit)")


def test_filled_entry_fields_round_trip(tmp_path: Path) -> None:
    """Coverage comes back as a Coverage; checksum and build facts as stored."""
    digest = "sha256:" + "0" * 64
    coverage = Coverage(engines=2, tensorrt_ops=None, pytorch_ops=4)
    stored = _entry(tmp_path, coverage=coverage, checksum=digest, built_for=BUILT_FOR).to_dict(NAME)
    assert stored["coverage"] == {"engines": 2, "tensorrt_ops": None, "pytorch_ops": 4, "layers": None}
    restored = CheckpointEntry.from_dict(stored)
    assert (restored.coverage, restored.checksum, restored.built_for) == (coverage, digest, BUILT_FOR)


def test_unreadable_layouts_are_artifact_errors(tmp_path: Path) -> None:
    """A writer marker of another kind, or a built-in entry with a plain path, is refused as damaged."""
    ours = _entry(tmp_path).to_dict(NAME)
    with pytest.raises(ArtifactError, match="neither aitune-trt-aot's fields nor those of AITune's built-in"):
        CheckpointEntry.from_dict(ours | {"writer": {"package": "aitune_trt_aot", "version": 2}})
    builtin = {"type": NAME, "exported_model_path": str(tmp_path / "model.pt2"), "device": None}
    with pytest.raises(ArtifactError, match="'exported_model_path' should be an ArtifactPath, got str"):
        CheckpointEntry.from_dict(builtin)


def test_entry_without_a_type_is_not_ours(tmp_path: Path) -> None:
    """from_dict refuses an entry naming no backend type, as it refuses one naming another backend."""
    entry = _entry(tmp_path).to_dict(NAME)
    del entry["type"]
    with pytest.raises(ArtifactError, match="of type None is not a TorchTensorRTAotBackend"):
        TorchTensorRTAotBackend.from_dict(None, entry)


# --- checks before an artifact is loaded ---------------------------------------------------------------------------


def test_loaded_backend_exposes_its_entry_and_has_no_runner_yet(tmp_path: Path, artifact: Path) -> None:
    """After from_dict the properties describe the stored artifact; nothing runs until it is activated."""
    backend = _loaded(tmp_path, checksum=file_digest(artifact), coverage=Coverage(1, 3, 0))
    assert backend.state == BackendState.CHECKPOINT_LOADED
    assert backend.artifact_path == artifact
    assert backend.artifact_format == "exported_program"
    assert backend.precision == "fp32"
    assert backend.coverage == Coverage(1, 3, 0)
    assert backend.runner is None
    fresh = TorchTensorRTAotBackend()
    assert (fresh.artifact_path, fresh.artifact_format, fresh.coverage, fresh.runner) == (None, None, None, None)


def test_missing_artifact_is_reported_before_its_checksum(tmp_path: Path) -> None:
    """A recorded checksum of a file that is gone: the error says missing, not damaged."""
    backend = _loaded(tmp_path, checksum="sha256:" + "0" * 64, built_for=BUILT_FOR)
    with pytest.raises(ArtifactError, match=r"model.pt2 is missing.*Re-run ait.tune"):
        backend.deploy(torch.device("cuda"))
    assert backend.state == BackendState.CHECKPOINT_LOADED
    assert backend.runner is None


def test_truncated_artifact_is_damaged(tmp_path: Path, artifact: Path) -> None:
    """An artifact cut short after save (same name, fewer bytes) fails its checksum before anything is loaded."""
    backend = _loaded(tmp_path, checksum=file_digest(artifact))
    artifact.write_bytes(ENGINE_BYTES[: len(ENGINE_BYTES) // 2])
    with pytest.raises(ArtifactError, match="is damaged: its bytes do not match the checksum"):
        backend.deploy(torch.device("cuda"))
    assert backend.runner is None


def test_artifact_for_another_machine_is_refused_at_deploy(
    tmp_path: Path, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An intact artifact built for another GPU architecture is refused by deploy, naming both machines."""
    here = BUILT_FOR | {"gpu": "NVIDIA A100", "compute_capability": "8.0"}
    monkeypatch.setattr(compat, "build_environment", lambda device=None: here)
    backend = _loaded(tmp_path, checksum=file_digest(artifact), built_for=BUILT_FOR)
    with pytest.raises(ArtifactError) as error:
        backend.deploy(torch.device("cuda"))
    message = str(error.value)
    assert message.startswith(f"Cannot run {artifact}: it was built for NVIDIA H200 (sm 9.0)")
    assert "this machine has NVIDIA A100 (sm 8.0)" in message
    assert "differs in: compute_capability)" in message
    assert backend.runner is None


@needs_no_cuda
def test_intact_artifact_built_here_gets_as_far_as_the_cuda_check(tmp_path: Path, artifact: Path) -> None:
    """Present, intact and built for this machine: the only thing left missing here is the GPU."""
    built_here = compat.build_environment(torch.device("cuda"))
    backend = _loaded(tmp_path, checksum=file_digest(artifact), built_for=built_here)
    with pytest.raises(MissingRequirementError, match="No CUDA GPU"):
        backend.deploy(torch.device("cuda"))


@needs_no_cuda
@pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without Torch-TensorRT")
def test_unknown_flavour_here_is_not_compared(tmp_path: Path, artifact: Path) -> None:
    """Where Torch-TensorRT does not import, the TensorRT flavour here is unknown and must not refuse the artifact."""
    backend = _loaded(tmp_path, checksum=file_digest(artifact), built_for=BUILT_FOR)
    with pytest.raises(MissingRequirementError, match="No CUDA GPU"):
        backend.deploy(torch.device("cuda"))


# --- safe save: leftovers belong to one target ----------------------------------------------------------------


def test_leftovers_of_a_target_are_found(tmp_path: Path) -> None:
    """The work folder an interrupted save to model.ait left (mkdtemp: 8 random characters) is listed; others not."""
    target = tmp_path / "model.ait"
    (tmp_path / ".model.k3j2h1ab.saving").mkdir()
    (tmp_path / "model.ait").write_bytes(b"good")
    (tmp_path / ".other.k3j2h1ab.saving").mkdir()
    assert leftovers(target) == [tmp_path / ".model.k3j2h1ab.saving"]


def test_leftovers_of_a_target_are_not_those_of_a_longer_name(tmp_path: Path) -> None:
    """model.v2.ait's work folder (possibly of a save still running) is not a leftover of model.ait."""
    (tmp_path / ".model.v2.k3j2h1ab.saving").mkdir()
    assert leftovers(tmp_path / "model.ait") == []
