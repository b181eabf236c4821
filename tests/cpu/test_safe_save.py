"""CPU: ``aitune_trt_aot.save`` keeps the previous checkpoint through a killed save; the error hierarchy."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import aitune.torch as ait
import pytest
import torch

import aitune_trt_aot
from aitune_trt_aot.safe_save import leftovers
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
