"""``aitune_trt_aot.save``: ``ait.save`` that never loses the previous checkpoint.

AITune writes the ``.ait`` file in place: a save that is killed or fails part-way leaves a truncated file
where the previous good checkpoint was. This runs ``ait.save`` inside a private folder beside the target
(``.<name>.<random>.saving``) and moves the finished ``.ait`` over the target with one atomic rename (POSIX).
AITune's side outputs (the unzipped checkpoint folder, and a copy of its SHA sums file, which plain
``ait.save`` leaves beside the ``.ait``) are not kept: the SHA sums are inside the ``.ait`` as well.
A save killed part-way leaves the old checkpoint untouched and at most one ``.<name>.*.saving`` folder beside
it, which the next save to the same path removes (two saves to one path at once are not supported).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def leftovers(path: Path) -> list[Path]:
    """Folders an interrupted save to ``path`` left beside it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.stem}.*.saving"))


def _remove_leftovers(path: Path) -> None:
    for leftover in leftovers(path):
        shutil.rmtree(leftover, ignore_errors=True)
        logger.info("Removed %s, left by an interrupted save.", leftover)


def save(model: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save an AITune model like ``ait.save(model, path)``, replacing ``path`` only once the new file is complete.

    Args:
        model: The tuned ``ait.Module`` (or model holding AITune modules), as ``ait.save`` takes it.
        path: The ``.ait`` checkpoint to write.
        **kwargs: Passed on to ``ait.save``.

    Returns:
        The path written.

    """
    import aitune.torch as ait

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    work = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".saving", dir=path.parent))
    try:
        written = work / path.name
        ait.save(model, written, **kwargs)
        if not written.is_file():
            raise RuntimeError(f"ait.save did not write {written}; {path} was left as it was.")
        os.replace(written, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
