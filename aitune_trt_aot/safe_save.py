"""``aitune_trt_aot.save`` and ``load``: ``ait.save`` that keeps the old checkpoint, ``ait.load`` with clear errors.

AITune writes the ``.ait`` file in place: a save that is killed or fails part-way leaves a truncated file
where the previous good checkpoint was. This runs ``ait.save`` inside a private folder beside the target
(``.<name>.<random>.saving``) and moves the finished ``.ait`` over the target with one atomic rename (POSIX).
AITune's side outputs (the unzipped checkpoint folder, and a copy of its SHA sums file, which plain
``ait.save`` leaves beside the ``.ait``) are not kept: the SHA sums are inside the ``.ait`` as well.
A save killed part-way leaves the old checkpoint untouched and at most one ``.<name>.*.saving`` folder beside
it, which the next save to the same path removes. Each folder records its owner (``holders``, refreshed while the
save runs), and a save removes only folders whose owner is gone: several processes saving to one path at once each
write a complete file, and the last rename wins.
The file lands exactly where ``ait.save(model, path, storage)`` would put it, so ``ait.load`` with the same
arguments finds it: AITune's default storage puts relative paths under its base folder (``checkpoints/``).

Under a launcher with several ranks (``torchrun``, MPI: AITune's ``distributed_context`` has a world size above 1),
every rank writes its own file, named as AITune names its own per-rank files (``distributed_output_path``):
``model.ait`` becomes ``model.rank-R-of-W.ait``. Each file records its rank's device; the engines in them are the
same build (docs/distributed.md). :func:`load` reads the rank's own file where it exists, else the plain one.

``ait.load`` of a damaged ``.ait`` raises ``zipfile.BadZipFile`` ("Bad CRC-32", "File is not a zip file") from
deep inside AITune. :func:`load` resolves the path as ``ait.load`` does, checks that the file exists, is a zip
archive and that every entry matches its CRC32, and raises :class:`~aitune_trt_aot.errors.ArtifactError` naming the
file, what is wrong and what to do; then it calls ``ait.load`` with the same arguments.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aitune_trt_aot import holders
from aitune_trt_aot.errors import ArtifactError
from aitune_trt_aot.files import archive_damage

logger = logging.getLogger(__name__)

_ZIP_START = b"PK\x03\x04"  # every zip archive's first entry header starts with these bytes
_REMEDY = (
    "Save it again with aitune_trt_aot.save (it never leaves a partly written file in place), or restore a good copy."
)


OWNER_FILE = ".owner"  # in a save's private folder: the saving process (holders.Holder), refreshed while it saves


def leftovers(path: Path) -> list[Path]:
    """Folders an interrupted save to ``path`` left beside it (not those of another name: ``model.v2.ait``)."""
    path = Path(path)
    # tempfile.mkdtemp puts 8 characters of [a-z0-9_] between our prefix and suffix.
    own = re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}\.saving")
    return sorted(p for p in path.parent.glob(f".{path.stem}.*.saving") if own.fullmatch(p.name))


def _abandoned(folder: Path) -> bool:
    """Whether the save that owns ``folder`` is gone (a folder without an owner: unchanged for the lock timeout)."""
    timeout = holders.lock_timeout()
    owner = holders.read_holder(folder / OWNER_FILE)
    if owner is not None:
        return holders.gone(owner, timeout) is not None
    try:
        return time.time() - folder.stat().st_mtime > timeout
    except FileNotFoundError:
        return False


def _remove_leftovers(path: Path) -> None:
    for leftover in leftovers(path):
        if _abandoned(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
            logger.info("Removed %s, left by an interrupted save.", leftover)


@contextmanager
def _owned(folder: Path) -> Iterator[None]:
    """Record this process as the owner of ``folder`` and keep the record fresh for the duration."""
    owner_file = folder / OWNER_FILE
    owner = holders.me()
    holders.write_holder(owner_file, owner)

    def refresh(beat: holders.Holder) -> bool:
        holders.write_holder(owner_file, beat)
        return True

    heartbeat = holders.Heartbeat(owner, refresh, holders.heartbeat_interval(holders.lock_timeout()))
    try:
        yield
    finally:
        heartbeat.stop()


def destination(path: str | os.PathLike[str], storage: Any = None) -> Path:
    """Where ``ait.save(model, path, storage)`` writes the ``.ait`` file (AITune's own path resolution)."""
    from aitune.torch.checkpoint.local_torch_storage import LocalTorchStorage
    from aitune.torch.checkpoint.storage_tasks import AIT_EXTENSION

    # Storage._get_target_folder_path is AITune's (private) rule: base folder / path, without the suffix.
    folder = Path((storage or LocalTorchStorage())._get_target_folder_path(path))
    return folder.with_name(folder.name + AIT_EXTENSION).absolute()


def rank_destination(path: str | os.PathLike[str], storage: Any = None) -> Path:
    """:func:`destination`, named for this rank where several ranks run (``model.rank-R-of-W.ait``; AITune's rule)."""
    from aitune.torch.distributed import distributed_output_path

    return distributed_output_path(destination(path, storage))


def save(model: Any, path: str | os.PathLike[str], storage: Any = None) -> Path:
    """Save like ``ait.save(model, path, storage)``; the previous file is replaced only by a complete new one.

    Under a launcher with several ranks each rank writes its own file, ``<name>.rank-R-of-W.ait`` (module docstring).

    Args:
        model: The tuned ``ait.Module`` (or model holding AITune modules), as ``ait.save`` takes it.
        path: The ``.ait`` checkpoint to write, as ``ait.save`` takes it.
        storage: AITune storage, as ``ait.save`` takes it (default: AITune's local storage).

    Returns:
        The absolute path written (where ``ait.load(module, path, storage)`` reads).

    """
    import aitune.torch as ait

    asked, path = destination(path, storage), rank_destination(path, storage)
    if path != asked:
        logger.info("%s saves to %s, its own file (several ranks run).", holders.describe_me(), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    work = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".saving", dir=path.parent))
    try:
        written = work / path.name  # absolute: every storage resolves it to itself
        with _owned(work):
            ait.save(model, written, storage=storage)
        if not written.is_file():
            raise RuntimeError(f"ait.save did not write {written}; {path} was left as it was.")
        os.replace(written, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _reads_ait_file(storage: Any) -> bool:
    """Whether ``ait.load`` with ``storage`` reads a ``.ait`` zip (the default does; without compression, a folder)."""
    from aitune.torch.checkpoint.storage_tasks import UnzipLoadTask

    return storage is None or any(isinstance(task, UnzipLoadTask) for task in storage.load_tasks)


def _not_a_zip(file: Path) -> str:
    """What to tell a user whose ``.ait`` is not a readable zip archive: cut short, or another kind of file."""
    with open(file, "rb") as handle:
        head = handle.read(len(_ZIP_START))
    if head == _ZIP_START:
        return (
            f"{file} is not a complete .ait checkpoint: it starts as a zip archive, but the zip directory at its end "
            f"is missing or unreadable (the file was cut short, e.g. by an interrupted save or copy). {_REMEDY}"
        )
    found = "it is empty" if not head else f"its first bytes are {head!r}"
    return (
        f"{file} is not an .ait checkpoint: it is not a zip archive ({found}). Pass the .ait file that "
        "aitune_trt_aot.save or ait.save wrote."
    )


def check_checkpoint_file(file: Path, given: str | os.PathLike[str] | None = None) -> None:
    """Raise :class:`ArtifactError` unless ``file`` is a zip archive whose every entry matches its CRC32.

    Args:
        file: The ``.ait`` file (as :func:`destination` resolves it).
        given: The path the caller passed, named in the message when the file is missing.

    """
    if not file.is_file():
        asked = "" if given is None else f" (the path {str(given)!r} resolved as ait.load resolves it)"
        raise ArtifactError(
            f"No .ait checkpoint at {file}{asked}. AITune's default storage puts a relative path under its base "
            "folder, 'checkpoints/' in the working directory: pass the path given to aitune_trt_aot.save or "
            "ait.save from the same working directory, or the absolute path aitune_trt_aot.save returned."
        )
    if not zipfile.is_zipfile(file):
        raise ArtifactError(_not_a_zip(file))
    damage = archive_damage(file)
    if damage is not None:
        entry, why = damage
        raise ArtifactError(f"{file} is damaged: its entry {entry} does not read back intact ({why}). {_REMEDY}")


def load(model: Any, path: str | os.PathLike[str], storage: Any = None, **kwargs: Any) -> Any:
    """Load like ``ait.load(model, path, storage, **kwargs)``, after checking the ``.ait`` file it will read.

    Args:
        model: The module to load into, as ``ait.load`` takes it.
        path: The ``.ait`` checkpoint, as ``ait.load`` takes it (a relative path lies under AITune's base folder).
        storage: AITune storage, as ``ait.load`` takes it (default: AITune's local storage).
        **kwargs: Passed to ``ait.load`` unchanged (``device_map``, ``disable_external_logging``).

    Returns:
        What ``ait.load`` returns.

    Raises:
        ArtifactError: The file is missing, is not a zip archive, or an entry fails its CRC32 (checked before
            ``ait.load`` runs, for storages that read a ``.ait`` zip).

    """
    import aitune.torch as ait

    own = rank_destination(path, storage)
    if own != destination(path, storage) and own.is_file():
        logger.info("%s loads %s, its own file (several ranks run).", holders.describe_me(), own)
        path = own  # absolute: every storage resolves it to itself
    if _reads_ait_file(storage):
        check_checkpoint_file(destination(path, storage), path)
    return ait.load(model, path, storage=storage, **kwargs)
