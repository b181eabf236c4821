"""The build cache: fingerprints that change with whatever shapes a build, and entries never left half-written."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from aitune_trt_aot import TorchTensorRTAotBackendConfig, build_cache, holders
from aitune_trt_aot.cache_readers import reading
from tests.support.processes import light_env, start_python

FACTS = {
    "artifact_format": "exported_program",
    "precision": "fp32",
    "coverage": {"engines": 1, "tensorrt_ops": 3, "pytorch_ops": 0},
    "built_for": {"gpu": "NVIDIA H200", "torch": "2.14.1"},
}


class Scaled(nn.Module):
    """A linear layer, doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.register_buffer("offset", torch.zeros(3))
        self.register_buffer("scale", torch.ones(3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * 2 * self.scale + self.offset


class Tripled(Scaled):
    """The same layers, another forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * 3 * self.scale + self.offset


@pytest.fixture(autouse=True)
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "builds"
    monkeypatch.setenv(build_cache.CACHE_DIR_ENV, str(folder))
    return folder


def _model(seed: int = 0, cls: type[nn.Module] = Scaled) -> nn.Module:
    torch.manual_seed(seed)
    return cls().eval()


def _artifact(tmp_path: Path, content: bytes = b"engine bytes" * 100) -> tuple[Path, dict]:
    path = tmp_path / "model.pt2"
    path.write_bytes(content)
    from aitune_trt_aot.files import file_digest

    return path, {**FACTS, "checksum": file_digest(path)}


def test_fingerprint_is_stable_for_the_same_model_and_a_deep_copy() -> None:
    model = _model()
    assert build_cache.model_fingerprint(model) == build_cache.model_fingerprint(model)
    assert build_cache.model_fingerprint(model) == build_cache.model_fingerprint(copy.deepcopy(model))
    assert build_cache.model_fingerprint(model) == build_cache.model_fingerprint(_model())


def test_fingerprint_changes_with_weights_buffers_code_and_mode() -> None:
    base = build_cache.model_fingerprint(_model())
    other_weights = _model(seed=1)
    changed_buffer = _model()
    changed_buffer.offset[0] = 1.0
    changed_non_persistent_buffer = _model()
    changed_non_persistent_buffer.scale[0] = 2.0
    training = _model().train()
    other_code = _model(cls=Tripled)
    models = (other_weights, changed_buffer, changed_non_persistent_buffer, training, other_code)
    prints = [build_cache.model_fingerprint(m) for m in models]
    assert base not in prints
    assert len(set(prints)) == len(prints)


def test_build_fingerprint_changes_with_the_build_facts() -> None:
    model = _model()
    config = TorchTensorRTAotBackendConfig().to_dict()
    facts = {"config": config, "inputs": {"ranges": [[1, 4], [16, 4]]}}
    base = build_cache.build_fingerprint(model, facts)
    assert base == build_cache.build_fingerprint(model, copy.deepcopy(facts))
    fp16 = {**facts, "config": TorchTensorRTAotBackendConfig(precision="fp16").to_dict()}
    wider = {**facts, "inputs": {"ranges": [[1, 4], [32, 4]]}}
    assert build_cache.build_fingerprint(model, fp16) != base
    assert build_cache.build_fingerprint(model, wider) != base


def test_store_then_lookup_gives_the_artifact_and_facts(tmp_path: Path, cache_folder: Path) -> None:
    artifact, facts = _artifact(tmp_path)
    folder = build_cache.store("abc123", artifact, facts)
    assert folder == cache_folder / "abc123"
    cached = build_cache.lookup("abc123")
    assert cached is not None
    assert cached.artifact.read_bytes() == artifact.read_bytes()
    assert {k: cached.facts[k] for k in FACTS} == FACTS
    assert cached.facts["checksum"] == facts["checksum"]
    assert [p.name for p in cache_folder.iterdir()] == ["abc123"]  # no staging folder left behind
    assert build_cache.lookup("unknown") is None


def test_the_kernel_cache_is_stored_with_the_artifact(tmp_path: Path, cache_folder: Path) -> None:
    """The kernel cache file is copied into the entry and found again; entries without one report None."""
    artifact, facts = _artifact(tmp_path)
    kernels = tmp_path / "kernels.bin"
    kernels.write_bytes(b"kernels")
    build_cache.store("with", artifact, facts, kernel_cache=kernels)
    build_cache.store("without", artifact, facts)
    cached = build_cache.lookup("with")
    assert cached is not None and cached.kernel_cache is not None
    assert cached.kernel_cache.read_bytes() == b"kernels"
    assert cached.kernel_cache.parent == cache_folder / "with"
    without = build_cache.lookup("without")
    assert without is not None and without.kernel_cache is None


@pytest.mark.parametrize("damage", ["truncated artifact", "bad json", "no json", "no artifact"])
def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path, damage: str) -> None:
    artifact, facts = _artifact(tmp_path)
    folder = build_cache.store("abc123", artifact, facts)
    assert folder is not None
    stored = folder / artifact.name
    if damage == "truncated artifact":
        stored.write_bytes(stored.read_bytes()[:10])
    elif damage == "bad json":
        (folder / build_cache.ENTRY_FILE).write_text("{not json")
    elif damage == "no json":
        (folder / build_cache.ENTRY_FILE).unlink()
    else:
        stored.unlink()
    assert build_cache.lookup("abc123") is None
    assert not folder.exists()


def test_only_the_most_recently_used_entries_are_kept(
    tmp_path: Path, cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(build_cache.CACHE_ENTRIES_ENV, "2")
    artifact, facts = _artifact(tmp_path)
    import os

    for age, name in enumerate(["old", "middle"]):
        build_cache.store(name, artifact, facts)
        os.utime(cache_folder / name, (1000 + age, 1000 + age))
    assert build_cache.lookup("old") is not None  # a hit makes "old" the most recently used
    build_cache.store("new", artifact, facts)
    assert sorted(p.name for p in cache_folder.iterdir()) == ["new", "old"]


def test_a_cache_folder_that_cannot_be_written_does_not_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(build_cache.CACHE_DIR_ENV, str(blocker / "builds"))
    artifact, facts = _artifact(tmp_path)
    assert build_cache.store("abc123", artifact, facts) is None


def test_default_folder_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(build_cache.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build_cache.cache_root() == tmp_path / "xdg" / "aitune_trt_aot" / "builds"


def test_config_field_is_checked_round_trips_and_is_optional_in_old_checkpoints() -> None:
    from aitune_trt_aot import ConfigError

    with pytest.raises(ConfigError, match="build_cache must be True or False"):
        TorchTensorRTAotBackendConfig(build_cache="yes")
    off = TorchTensorRTAotBackendConfig(build_cache=False)
    assert TorchTensorRTAotBackendConfig.from_dict(off.to_dict()) == off
    assert off.describe() == "build_cache=False"
    old = TorchTensorRTAotBackendConfig().to_dict()
    del old["build_cache"]
    assert TorchTensorRTAotBackendConfig.from_dict(json.loads(json.dumps(old))).build_cache is True


# --- a cache shared by processes and machines ---------------------------------------------------------------------


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_eviction_skips_an_entry_another_process_is_reading(
    tmp_path: Path, cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old entry under a live reader's mark survives eviction; once that reader is killed, it goes."""
    monkeypatch.setenv(build_cache.CACHE_ENTRIES_ENV, "1")
    artifact, facts = _artifact(tmp_path)
    build_cache.store("old", artifact, facts)
    ready = tmp_path / "ready"
    reader = start_python(
        "-m", "tests.support.cache_processes", "read", str(cache_folder), "old", str(ready), env=light_env()
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert reader.poll() is None and time.monotonic() < deadline, reader.communicate()[1][-3000:]
            time.sleep(0.05)
        build_cache.store("new", artifact, facts)
        assert _entries(cache_folder) == ["new", "old"], "the entry being read was not deleted"
        assert build_cache.lookup("old") is not None
    finally:
        reader.kill()
        reader.communicate()
    build_cache.store("newest", artifact, facts)  # the killed reader's mark is judged gone and removed
    assert _entries(cache_folder) == ["newest"]
    assert not any(".reader." in p.name for p in cache_folder.iterdir())


def test_a_damaged_entry_being_read_is_taken_out_of_use_and_deleted_after_the_read(
    tmp_path: Path, cache_folder: Path
) -> None:
    """discard() renames the entry away at once (no new reader finds it) but deletes it only when nobody reads it."""
    artifact, facts = _artifact(tmp_path)
    folder = build_cache.store("abc123", artifact, facts)
    with reading(cache_folder, "abc123"):
        build_cache.discard(folder)
        assert build_cache.lookup("abc123") is None
        (retired,) = [p for p in cache_folder.iterdir() if p.name.endswith(".retired")]
        assert (retired / artifact.name).is_file(), "still there for the process reading it"
    build_cache.store("other", artifact, facts)  # eviction sweeps retired entries nobody reads
    assert sorted(p.name for p in cache_folder.iterdir()) == ["other"]


def test_concurrent_publishers_of_one_fingerprint_leave_one_intact_entry(tmp_path: Path, cache_folder: Path) -> None:
    """Four processes store the same fingerprint at once: the first rename wins, the entry is never torn."""
    command = ["-m", "tests.support.cache_processes", "publish", str(cache_folder), "abc123"]
    publishers = [start_python(*command, text, env=light_env()) for text in "abcd"]
    for publisher in publishers:
        _, err = publisher.communicate(timeout=120)
        assert publisher.returncode == 0, err[-3000:]
    assert sorted(p.name for p in cache_folder.iterdir()) == ["abc123"], "no staging folder left behind"
    cached = build_cache.lookup("abc123")
    assert cached is not None, "the entry is intact: its artifact matches its checksum"
    assert cached.artifact.read_text() in {text * 10000 for text in "abcd"}
    assert holders.Holder.from_json(cached.facts["built_by"]) is not None, "the entry names who built it"


@pytest.mark.parametrize(
    ("gpu", "capability"), [("NVIDIA L4", "8.9"), ("NVIDIA H100 PCIe", "9.0"), ("NVIDIA H200", "9.0")]
)
def test_the_key_of_a_build_differs_between_gpu_models(monkeypatch: pytest.MonkeyPatch, gpu: str, capability: str):
    """Entries are keyed by the GPU's name and compute capability: an H100 node never reuses an L4 node's engines."""
    from aitune_trt_aot import compat
    from aitune_trt_aot.pipeline.cache_reuse import fingerprint

    def key_on(name: str, cc: str, index: int = 0) -> str:
        monkeypatch.setattr(compat, "device_facts", lambda device=None: {"gpu": name, "compute_capability": cc})
        job = SimpleNamespace(config=TorchTensorRTAotBackendConfig(), device=torch.device("cuda", index))
        return fingerprint(job, _model(), SimpleNamespace(describe=lambda: "plan"), SimpleNamespace(to_dict=dict))

    h100 = key_on("NVIDIA H100 80GB HBM3", "9.0")
    assert key_on("NVIDIA H100 80GB HBM3", "9.0", index=3) == h100, "the same GPU model on another index: one entry"
    assert key_on(gpu, capability) != h100
