"""CPU: ``write_atomically`` never leaves a half-written artifact or a temporary file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitune_trt_aot.files import write_atomically


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder of its own for the artifacts of one test."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    return folder


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_moves_the_file_into_place(out: Path) -> None:
    """The writer gets a path beside the target with the target's suffix; the result lands at the target."""
    target = out / "model.pt2"
    given: list[Path] = []

    def write(tmp: Path) -> None:
        given.append(tmp)
        assert not tmp.exists(), "the writer must be able to create the file itself"
        tmp.write_bytes(b"engine")

    write_atomically(target, write)
    assert target.read_bytes() == b"engine"
    assert len(given) == 1
    assert given[0].parent == target.parent
    assert given[0].suffix == ".pt2"
    assert given[0] != target
    assert _entries(out) == ["model.pt2"]


def test_success_replaces_previous_content(out: Path) -> None:
    """An existing file is replaced by the new content."""
    target = out / "model.ts"
    target.write_text("old")
    write_atomically(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert _entries(out) == ["model.ts"]


def test_missing_parent_folders_are_created(out: Path) -> None:
    """The target's folder is created when it does not exist yet."""
    target = out / "cache" / "graph0" / "model.pt"
    write_atomically(target, lambda tmp: tmp.write_text("x"))
    assert target.read_text() == "x"


def test_failure_keeps_previous_content_and_leaves_no_temp(out: Path) -> None:
    """When the writer fails after writing part of the file, the old target is untouched and no temp remains."""
    target = out / "model.pt2"
    target.write_text("previous")

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, write)
    assert target.read_text() == "previous"
    assert _entries(out) == ["model.pt2"]


def test_failure_without_previous_file_leaves_nothing(out: Path) -> None:
    """A failed first write leaves the folder empty."""

    def write(tmp: Path) -> None:
        tmp.write_text("x")
        raise RuntimeError("serializer failed")

    with pytest.raises(RuntimeError, match="serializer failed"):
        write_atomically(out / "model.pt2", write)
    assert _entries(out) == []


def test_failed_directory_writer_leaves_nothing(out: Path) -> None:
    """A writer that creates a folder with files and then fails leaves no folder behind."""

    def write(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "part").write_text("x")
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        write_atomically(out / "model.pt2", write)
    assert _entries(out) == []


def test_interrupt_is_cleaned_up_too(out: Path) -> None:
    """A KeyboardInterrupt during the write removes the temporary file as well."""

    def write(tmp: Path) -> None:
        tmp.write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(out / "model.pt2", write)
    assert _entries(out) == []


def test_writer_that_writes_nothing_is_an_error(out: Path) -> None:
    """A writer that returns without creating the file is reported, and nothing is left behind."""
    target = out / "model.pt2"
    with pytest.raises(RuntimeError, match="produced no file"):
        write_atomically(target, lambda tmp: None)
    assert _entries(out) == []
