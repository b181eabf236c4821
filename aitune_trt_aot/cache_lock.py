"""One build per cache entry across processes and machines: the build lock, and waiting for the one who holds it.

Processes that share a build cache folder (ranks under ``torchrun``, a fleet on a shared filesystem) and miss the
same entry take turns with :func:`take_turn`. The first creates the entry's lock file ``.<fingerprint>.lock`` in the
cache folder (hard-linked into place from a complete temporary file, so it never exists half-written; ``O_EXCL``
where the filesystem has no hard links) and builds; a :class:`~aitune_trt_aot.holders.Heartbeat` keeps it fresh.
The others poll until one of:

* the entry is published: they reuse it (each still loads and checks it on its own device);
* the builder failed: it wrote ``.<fingerprint>.failed`` (its holder and error) before letting go, and every waiter
  raises a :class:`~aitune_trt_aot.errors.BuildError` naming the builder and its error;
* the lock is abandoned (``holders.gone``: a crashed holder): a waiter moves it aside and takes the lock;
* the lock is released without a published entry (the builder could not store it): a waiter takes the lock;
* ``$AITUNE_TRT_AOT_BUILD_WAIT`` seconds (default 3600) pass: a ``BuildError`` naming the holder.

A lock is removed only after moving it aside with ``os.rename`` (atomic; of two processes only one succeeds) and
checking the token of what was moved; a lock that turns out to be someone else's is put back. Works with or without
a ``torch.distributed`` process group: it needs only the shared folder.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from aitune_trt_aot import holders
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.holders import Heartbeat, Holder

logger = logging.getLogger(__name__)

BUILD_WAIT_ENV = "AITUNE_TRT_AOT_BUILD_WAIT"
DEFAULT_BUILD_WAIT = 3600.0
_ERROR_CHARACTERS = 4000  # of a failed build's error kept in its marker
_FIRST_POLL, _LONGEST_POLL = 0.05, 1.0

Found = TypeVar("Found")


def build_wait() -> float:
    """Longest wait for another process's build of the same entry (``$AITUNE_TRT_AOT_BUILD_WAIT``, default 3600 s)."""
    return holders.env_number(BUILD_WAIT_ENV, DEFAULT_BUILD_WAIT)


def lock_path(root: Path, name: str) -> Path:
    """The lock file of entry ``name`` in cache folder ``root``."""
    return root / f".{name}.lock"


def failure_path(root: Path, name: str) -> Path:
    """The marker a failed build of entry ``name`` leaves in ``root``."""
    return root / f".{name}.failed"


@dataclass(frozen=True)
class Failure:
    """What a failed build left: who built and why it failed."""

    holder: Holder
    error: str


def read_failure(root: Path, name: str) -> Failure | None:
    """The failure marker of entry ``name``, None where there is none (or it cannot be read)."""
    try:
        data = json.loads(failure_path(root, name).read_text())
        holder = Holder.from_json(data["holder"])
        return None if holder is None else Failure(holder, str(data["error"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _create(path: Path, holder: Holder) -> bool:
    """Create the lock file holding ``holder``, atomically and only if there is none; whether it was created."""
    text = json.dumps(holder.to_json())
    staging = path.with_name(f"{path.name}.{holder.token}.new")
    staging.write_text(text)
    try:
        os.link(staging, path)  # fails if the lock exists; the content is complete the moment it appears
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    finally:
        staging.unlink(missing_ok=True)
    try:  # a filesystem without hard links
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w") as file:
        file.write(text)
    return True


def remove_if(path: Path, owned: Callable[[Holder | None], bool]) -> bool:
    """Remove the claim file ``path`` if ``owned(its holder)``; put it back otherwise. Whether it was removed.

    The file is first moved aside (one ``os.rename``: if two processes try, one gets it), then judged, so a claim
    created again in between is never removed by mistake.
    """
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.aside")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        if owned(holders.read_holder(aside)):
            return True
        try:
            os.link(aside, path)  # someone else's claim: put it back unless a newer one took its place
        except FileExistsError:
            logger.warning("The claim %s changed hands while being checked; the newer one stays.", path)
        return False
    finally:
        aside.unlink(missing_ok=True)


class BuildLock:
    """A held build lock: refreshed by a heartbeat until :meth:`release` or :meth:`fail`."""

    def __init__(self, root: Path, name: str, holder: Holder, timeout: float) -> None:
        """Take over a lock file just created for ``holder``; start its heartbeat."""
        self.root, self.name, self.path = root, name, lock_path(root, name)
        self._heartbeat = Heartbeat(holder, self._refresh, holders.heartbeat_interval(timeout))

    @property
    def holder(self) -> Holder:
        """Who holds it (this process), with its latest heartbeat."""
        return self._heartbeat.holder

    def _refresh(self, holder: Holder) -> bool:
        current = holders.read_holder(self.path)
        if current is None or current.token != holder.token:
            logger.warning(
                "%s lost the build lock %s (another process judged it abandoned); its build goes on and is "
                "published only if no other process publishes first.",
                holder.describe(),
                self.path,
            )
            return False
        holders.write_holder(self.path, holder)
        return True

    def release(self) -> None:
        """Stop the heartbeat and remove the lock, if it is still this process's."""
        self._heartbeat.stop()
        remove_if(self.path, lambda found: found is not None and found.token == self.holder.token)

    def fail(self, error: BaseException) -> None:
        """Record why this build failed (for the processes waiting for it), then release the lock."""
        text = f"{type(error).__name__}: {error}"[:_ERROR_CHARACTERS]
        record = json.dumps({"holder": self.holder.to_json(), "error": text})
        try:
            write_atomically(failure_path(self.root, self.name), lambda tmp: tmp.write_text(record))
        except OSError as write_error:
            logger.warning("Could not record the failed build in %s (%s).", self.root, write_error)
        self.release()


@dataclass(frozen=True)
class Turn(Generic[Found]):
    """What :func:`take_turn` ended with: the lock to build under, or what another process published.

    Attributes:
        lock: Held by this process, which builds (None when ``found``).
        found: The published entry (None when ``lock``).
        builder: The holder of the lock this process waited on (None where it did not wait).
        waited: Seconds spent waiting.

    """

    lock: BuildLock | None
    found: Found | None
    builder: Holder | None
    waited: float


def _failed_build(me: Holder, failure: Failure, root: Path) -> BuildError:
    return BuildError(
        f"{me.describe()} waited for the build of this model by {failure.holder.describe()}, which failed: "
        f"{failure.error.rstrip('.')}. Every process sharing the build cache {root} stops with this error: fix its "
        "cause and tune again."
    )


def _waited_too_long(me: Holder, holder: Holder | None, path: Path, waited: float, limit: float) -> BuildError:
    if holder is None:
        builder = f"another process (its lock {path} cannot be read)"
    else:
        builder = f"{holder.describe()} (lock {path}, last heartbeat {time.time() - holder.heartbeat:.0f} s ago)"
    return BuildError(
        f"{me.describe()} waited {waited:.0f} s for the build of this model by {builder}, which has not finished. "
        f"Set {BUILD_WAIT_ENV} above {limit:g} s if its builds take longer; if that process is stuck, stop it (its "
        "lock is then taken over) or delete the lock file."
    )


def _take_over_if_gone(path: Path, holder: Holder, timeout: float, me: Holder) -> bool:
    """Remove ``holder``'s lock if it is abandoned (``holders.gone``); whether it was judged abandoned."""
    reason = holders.gone(holder, timeout)
    if reason is None:
        return False
    if remove_if(path, lambda current: current is not None and current.token == holder.token):
        logger.warning("%s: taking over the build lock %s of %s: %s.", me.describe(), path, holder.describe(), reason)
    return True


def _clear_unreadable(path: Path, timeout: float) -> None:
    """Remove a lock file that holds no holder and has not changed for ``timeout`` seconds (a torn write)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return
    if age > timeout and remove_if(path, lambda current: current is None):
        logger.warning("Removed the unreadable build lock %s, unchanged for %.0f s.", path, age)


def take_turn(
    root: Path,
    name: str,
    find: Callable[[], Found | None],
    *,
    wait: float | None = None,
    timeout: float | None = None,
) -> Turn[Found]:
    """Return entry ``name`` once ``find()`` finds it published, or the lock to build it under (module docstring).

    Args:
        root: The cache folder (shared by every process that may build this entry).
        name: The entry's name (its fingerprint).
        find: Looks the published entry up; None while there is none.
        wait: Longest wait for another process's build (default :func:`build_wait`).
        timeout: Heartbeat age after which a lock is abandoned (default ``holders.lock_timeout``).

    Raises:
        BuildError: The build waited for failed, or did not finish within ``wait`` seconds.

    """
    wait = build_wait() if wait is None else wait
    timeout = holders.lock_timeout() if timeout is None else timeout
    me = holders.me()
    path = lock_path(root, name)
    start = time.monotonic()
    earlier = read_failure(root, name)  # a failure from before this call is not the failure of the build waited on
    earlier_token = None if earlier is None else earlier.holder.token
    seen: Holder | None = None
    poll = _FIRST_POLL
    root.mkdir(parents=True, exist_ok=True)
    while True:
        found = find()
        if found is not None:
            return Turn(None, found, seen, time.monotonic() - start)
        failure = read_failure(root, name)
        if failure is not None and failure.holder.token != earlier_token:
            raise _failed_build(me, failure, root)
        if _create(path, me):
            lock = BuildLock(root, name, me, timeout)
            found = find()  # published between the look-up and the lock: nothing to build
            if found is not None:
                lock.release()
                return Turn(None, found, seen, time.monotonic() - start)
            failure_path(root, name).unlink(missing_ok=True)
            return Turn(lock, None, seen, time.monotonic() - start)
        holder = holders.read_holder(path)
        if holder is None:
            _clear_unreadable(path, timeout)  # released meanwhile, being written, or damaged
        else:
            if seen is None or seen.token != holder.token:
                logger.info("%s: waiting for the build of %s (lock %s).", me.describe(), holder.describe(), path)
            seen = holder
            if _take_over_if_gone(path, holder, timeout, me):
                continue
        waited = time.monotonic() - start
        if waited > wait:
            raise _waited_too_long(me, seen, path, waited, wait)
        time.sleep(min(poll, max(0.0, wait - waited) + 0.01))
        poll = min(poll * 2, _LONGEST_POLL)
