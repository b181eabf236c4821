"""``aitune_trt_aot.save``: ``ait.save`` that never loses the previous checkpoint.

AITune writes the ``.ait`` file in place: a save that is killed or fails part-way leaves a truncated file
where the previous good checkpoint was. This runs ``ait.save`` inside a private folder beside the target
(``.<name>.<random>.saving``) and moves the finished ``.ait`` over the target with one atomic rename (POSIX).
AITune's side outputs (the unzipped checkpoint folder, and a copy of its SHA sums file, which plain
``ait.save`` leaves beside the ``.ait``) are not kept: the SHA sums are inside the ``.ait`` as well.
A save killed part-way leaves the old checkpoint untouched and at most one ``.<name>.*.saving`` folder beside
it, which the next save to the same path removes (two saves to one path at once are not supported).
The file lands exactly where ``ait.save(model, path, storage)`` would put it, so ``ait.load`` with the same
arguments finds it: AITune's default storage puts relative paths under its base folder (``checkpoints/``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def leftovers(path: Path) -> list[Path]:
    """Folders an interrupted save to ``path`` left beside it (not those of another name: ``model.v2.ait``)."""
    path = Path(path)
    # tempfile.mkdtemp puts 8 characters of [a-z0-9_] between our prefix and suffix.
    own = re.compile(rf"\.{re.escape(path.stem)}\.[a-z0-9_]{{8}}\.saving")
    return sorted(p for p in path.parent.glob(f".{path.stem}.*.saving") if own.fullmatch(p.name))


def _remove_leftovers(path: Path) -> None:
    for leftover in leftovers(path):
        shutil.rmtree(leftover, ignore_errors=True)
        logger.info("Removed %s, left by an interrupted save.", leftover)


def destination(path: str | os.PathLike[str], storage: Any = None) -> Path:
    """Where ``ait.save(model, path, storage)`` writes the ``.ait`` file (AITune's own path resolution)."""
    from aitune.torch.checkpoint.local_torch_storage import LocalTorchStorage
    from aitune.torch.checkpoint.storage_tasks import AIT_EXTENSION

    # Storage._get_target_folder_path is AITune's (private) rule: base folder / path, without the suffix.
    folder = Path((storage or LocalTorchStorage())._get_target_folder_path(path))
    return folder.with_name(folder.name + AIT_EXTENSION).absolute()


def save(model: Any, path: str | os.PathLike[str], storage: Any = None) -> Path:
    """Save like ``ait.save(model, path, storage)``; the previous file is replaced only by a complete new one.

    Args:
        model: The tuned ``ait.Module`` (or model holding AITune modules), as ``ait.save`` takes it.
        path: The ``.ait`` checkpoint to write, as ``ait.save`` takes it.
        storage: AITune storage, as ``ait.save`` takes it (default: AITune's local storage).

    Returns:
        The absolute path written (where ``ait.load(module, path, storage)`` reads).

    """
    import aitune.torch as ait

    path = destination(path, storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    work = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".saving", dir=path.parent))
    try:
        written = work / path.name  # absolute: every storage resolves it to itself
        ait.save(model, written, storage=storage)
        if not written.is_file():
            raise RuntimeError(f"ait.save did not write {written}; {path} was left as it was.")
        os.replace(written, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
