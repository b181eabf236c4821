"""CPU: ``aitune_trt_aot.save`` survives a killed save, ``aitune_trt_aot.load`` names damage; the error hierarchy."""

from __future__ import annotations

import signal
import textwrap
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import aitune.torch as ait
import pytest
import torch

import aitune_trt_aot
from aitune_trt_aot.safe_save import leftovers
from tests.support.archives import flip_a_byte_inside
from tests.support.processes import run_python
from tests.support.tuning import eager_module, tuned_eager_module


def _tuned_eager_module(name: str) -> ait.Module:
    """An AITune module tuned on the CPU with AITune's eager backend: a real checkpoint without a GPU."""
    return tuned_eager_module(torch.nn.Linear(4, 4), name)


def test_save_writes_a_checkpoint_ait_load_reads_and_leaves_nothing_else(tmp_path: Path) -> None:
    """A real ait.save through aitune_trt_aot.save: the .ait lands at the target, nothing else stays beside it."""
    module = _tuned_eager_module("safe-save")
    target = tmp_path / "ckpt" / "model.ait"
    assert aitune_trt_aot.save(module, target) == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.ait"]
    first = target.read_bytes()
    aitune_trt_aot.save(module, target)  # over an existing checkpoint
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.ait"]
    assert len(target.read_bytes()) == len(first)
    loaded = ait.load(eager_module(torch.nn.Linear(4, 4), "safe-save"), target)
    assert loaded(torch.randn(2, 4)).shape == (2, 4)


def test_relative_path_lands_where_ait_save_and_ait_load_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path resolves as AITune resolves it (under checkpoints/ by default), so ait.load finds it."""
    module = _tuned_eager_module("relative")
    monkeypatch.chdir(tmp_path)
    written = aitune_trt_aot.save(module, "model.ait")
    assert written == tmp_path / "checkpoints" / "model.ait"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
    assert sorted(p.name for p in written.parent.iterdir()) == ["model.ait"]
    loaded = ait.load(eager_module(torch.nn.Linear(4, 4), "relative"), "model.ait")
    assert loaded(torch.randn(2, 4)).shape == (2, 4)


_KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import aitune_trt_aot  # first: provides the `tensorrt` module aitune.torch imports
    import aitune.torch as ait

    def dies_half_way(model, path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a checkpoint")
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    ait.save = dies_half_way
    aitune_trt_aot.save(object(), sys.argv[1])
    """
)


def test_killed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save killed with SIGKILL part-way leaves the old file intact; the next save cleans up after it."""
    target = tmp_path / "model.ait"
    target.write_bytes(b"the previous good checkpoint")
    result = run_python("-c", _KILLED_SAVE, str(target), cwd=tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert target.read_bytes() == b"the previous good checkpoint"
    stray = leftovers(target)
    assert len(stray) == 1 and stray[0].name.startswith(".model.") and stray[0].name.endswith(".saving")

    def writes_new(model: object, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"the new checkpoint")

    monkeypatch.setattr(ait, "save", writes_new)
    aitune_trt_aot.save(object(), target)
    assert target.read_bytes() == b"the new checkpoint"
    assert leftovers(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ait"]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ait.save raising part-way: the error propagates, the old file and the folder are as they were."""
    target = tmp_path / "model.ait"
    target.write_bytes(b"old")

    def fails(model: object, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ait, "save", fails)
    with pytest.raises(OSError, match="disk full"):
        aitune_trt_aot.save(object(), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ait"]


@pytest.fixture
def saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real checkpoint saved as ``model.ait`` from ``tmp_path`` (so under ``tmp_path/checkpoints``)."""
    monkeypatch.chdir(tmp_path)
    return aitune_trt_aot.save(_tuned_eager_module("safe-load"), "model.ait")


@pytest.fixture
def ait_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple, dict]]:
    """Replaces ait.load with a recorder: the calls that got past aitune_trt_aot.load's checks."""
    calls: list[tuple[tuple, dict]] = []

    def recorder(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "loaded"

    monkeypatch.setattr(ait, "load", recorder)
    return calls


def test_load_delegates_to_ait_load_which_reads_the_checkpoint(saved: Path) -> None:
    """A good checkpoint, by the relative path it was saved with: the real ait.load reads it and the model runs."""
    loaded = aitune_trt_aot.load(eager_module(torch.nn.Linear(4, 4), "safe-load"), "model.ait")
    assert loaded(torch.randn(2, 4)).shape == (2, 4)


def test_load_passes_every_argument_to_ait_load_unchanged(saved: Path, ait_load_calls: list) -> None:
    """ait.load gets the same model, path, storage and extra keywords (device_map) it would have got directly."""
    model = object()
    assert aitune_trt_aot.load(model, "model.ait", device_map={"": "cpu"}, disable_external_logging=False) == "loaded"
    assert ait_load_calls == [
        ((model, "model.ait"), {"storage": None, "device_map": {"": "cpu"}, "disable_external_logging": False})
    ]


def _refusal(ait_load_calls: list) -> str:
    """The ArtifactError message of ``aitune_trt_aot.load(..., "model.ait")``; ait.load must not have run."""
    with pytest.raises(aitune_trt_aot.ArtifactError) as error:
        aitune_trt_aot.load(object(), "model.ait")
    assert ait_load_calls == []
    return str(error.value)


def test_load_of_a_missing_checkpoint_names_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ait_load_calls: list
) -> None:
    """A relative path that is not under checkpoints/: the error names the resolved file and AITune's base folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.ait").write_bytes(b"beside, not under checkpoints/")
    message = _refusal(ait_load_calls)
    assert message.startswith(f"No .ait checkpoint at {tmp_path / 'checkpoints' / 'model.ait'} (the path 'model.ait'")
    assert "'checkpoints/'" in message and "absolute path aitune_trt_aot.save returned" in message


def test_load_of_a_file_that_is_not_a_zip_says_so(saved: Path, ait_load_calls: list) -> None:
    """Another kind of file (AITune: "File is not a zip file") or an empty one: named as not a checkpoint."""
    saved.write_bytes(b"torch.save output, not a checkpoint")
    assert _refusal(ait_load_calls).startswith(f"{saved} is not an .ait checkpoint: it is not a zip archive (its first")
    saved.write_bytes(b"")
    assert "it is not a zip archive (it is empty)" in _refusal(ait_load_calls)


def test_load_of_a_truncated_checkpoint_says_it_was_cut_short(saved: Path, ait_load_calls: list) -> None:
    """A checkpoint cut to half its size (AITune: "File is not a zip file"): cut short, save again."""
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    message = _refusal(ait_load_calls)
    assert message.startswith(f"{saved} is not a complete .ait checkpoint") and "cut short" in message
    assert "Save it again with aitune_trt_aot.save" in message


def test_load_of_a_checkpoint_with_a_flipped_bit_names_the_entry(saved: Path, ait_load_calls: list) -> None:
    """One flipped bit inside an entry (AITune: "Bad CRC-32"): the zip opens, its CRC32 fails, before ait.load."""
    flip_a_byte_inside(saved, "state_dict.pt")
    assert zipfile.is_zipfile(saved)
    message = _refusal(ait_load_calls)
    assert message.startswith(f"{saved} is damaged: its entry state_dict.pt does not read back intact (BadZipFile")
    assert "Bad CRC-32" in message and "Save it again with aitune_trt_aot.save" in message


def test_every_error_shares_one_base_and_its_builtin_type() -> None:
    """All of the package's errors derive from AitrtAotError and keep the built-in type users catch."""
    expected = {
        "ConfigError": ValueError,
        "MissingRequirementError": RuntimeError,
        "UnsupportedInputsError": ValueError,
        "BuildError": RuntimeError,
        "InputShapeError": ValueError,
        "ArtifactError": RuntimeError,
        "Pt2LoadError": RuntimeError,
        "Pt2InputError": ValueError,
        "Pt2ExportError": ValueError,
    }
    for name, builtin in expected.items():
        error = getattr(aitune_trt_aot, name)
        assert issubclass(error, aitune_trt_aot.AitrtAotError) and issubclass(error, builtin), name


def test_saves_to_one_path_at_once_each_write_a_complete_file_and_none_breaks_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three saves to one path at the same time: none removes another's work folder; the file is one whole save.

    A save removes leftovers only of saves whose process is gone (before, every save removed every leftover,
    including the folders of saves still running, which then failed).
    """
    target = tmp_path / "model.ait"

    def slow_save(model: object, path: Path, **kwargs: object) -> None:
        with open(path, "w") as handle:
            for _ in range(5):
                handle.write(f"{model}" * 1000)
                handle.flush()
                time.sleep(0.05)

    monkeypatch.setattr(ait, "save", slow_save)
    errors: list[BaseException] = []

    def save(name: str) -> None:
        try:
            aitune_trt_aot.save(name, target)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            errors.append(error)

    threads = [threading.Thread(target=save, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in {name * 5000 for name in "abc"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ait"]


def test_under_a_launcher_each_rank_saves_and_loads_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ait_load_calls: list
) -> None:
    """WORLD_SIZE 4, RANK 2 (what torchrun sets): model.ait is written as model.rank-2-of-4.ait, and read back."""
    module = _tuned_eager_module("ranks")  # tuned alone: AITune refuses to tune under a launcher without a group
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    written = aitune_trt_aot.save(module, tmp_path / "model.ait")
    assert written == tmp_path / "model.rank-2-of-4.ait"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.rank-2-of-4.ait"]
    aitune_trt_aot.load("module", tmp_path / "model.ait")
    assert ait_load_calls[-1][0] == ("module", written)


def test_a_rank_without_its_own_file_loads_the_shared_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ait_load_calls: list
) -> None:
    """A checkpoint saved by one process, deployed to every rank: each rank reads the plain file."""
    written = aitune_trt_aot.save(_tuned_eager_module("shared"), tmp_path / "model.ait")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    aitune_trt_aot.load("module", tmp_path / "model.ait")
    assert ait_load_calls[-1][0] == ("module", tmp_path / "model.ait") and written == tmp_path / "model.ait"
