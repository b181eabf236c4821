"""Readers' marks on build cache entries, so that eviction never deletes an entry another process is reading.

A process reading entry ``name`` (hashing or copying its files) holds a mark: the file
``.<name>.reader.<token>`` in the cache folder, holding its :class:`~aitune_trt_aot.holders.Holder` and refreshed
by a heartbeat while the read lasts. Removal of an entry (``build_cache``: eviction, a damaged entry) skips an entry
with a live mark; a mark whose holder is gone (``holders.gone``: a reader killed mid-read) is deleted when found.
Marks sit beside the entries, not inside them, so entries stay exactly as published.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aitune_trt_aot import holders
from aitune_trt_aot.holders import Heartbeat, Holder

logger = logging.getLogger(__name__)

_MARK = ".reader."


def mark_path(root: Path, name: str, holder: Holder) -> Path:
    """The mark ``holder`` keeps on entry ``name`` while reading it."""
    return root / f".{name}{_MARK}{holder.token}"


@contextmanager
def reading(root: Path, name: str) -> Iterator[None]:
    """Hold a reader's mark on entry ``name`` of cache folder ``root`` for the duration.

    A mark that cannot be written (a read-only cache) only logs: the read goes on unprotected.
    """
    holder = holders.me()
    path = mark_path(root, name, holder)

    def refresh(beat: Holder) -> bool:
        if not path.exists():  # removed as abandoned by another process: the read is no longer protected
            return False
        holders.write_holder(path, beat)
        return True

    try:
        holders.write_holder(path, holder)
    except OSError as error:
        logger.info("Reading the build cache entry %s without a reader's mark (%s).", root / name, error)
        yield
        return
    heartbeat = Heartbeat(holder, refresh, holders.heartbeat_interval(holders.lock_timeout()))
    try:
        yield
    finally:
        heartbeat.stop()
        path.unlink(missing_ok=True)


def live_readers(root: Path, name: str, timeout: float | None = None) -> list[Holder]:
    """The processes reading entry ``name`` now; marks of readers that are gone are deleted on the way."""
    timeout = holders.lock_timeout() if timeout is None else timeout
    live = []
    for path in root.glob(f".{name}{_MARK}*"):
        holder = holders.read_holder(path)
        if holder is None:
            continue  # being written (atomically, so only a name in passing) or vanished
        reason = holders.gone(holder, timeout)
        if reason is None:
            live.append(holder)
        else:
            logger.info("Removing the mark of %s on build cache entry %s: %s.", holder.describe(), name, reason)
            path.unlink(missing_ok=True)
    return live
