"""Who holds a claim kept as a file (a build lock, a reader's mark, a save in progress), and whether it is gone.

Processes sharing a build cache, on one machine or on many over a shared filesystem, claim things with small files.
Each file holds a :class:`Holder` as JSON: host, pid, rank and world size, when the claim started, its last
heartbeat, and a random token. A :class:`Heartbeat` thread rewrites the file while the claim lasts. Another process
decides a claim is abandoned (:func:`gone`):

* where the holder ran in the same process space (same host name, machine boot and pid namespace, so its pid means
  the same process here): as soon as that process no longer runs (a crash is noticed at once); a live process is
  never overrun, even if its heartbeat is late (waiters have a bounded wait of their own);
* elsewhere (another machine or container): when its last heartbeat is older than ``$AITUNE_TRT_AOT_LOCK_TIMEOUT``
  seconds (default 60).

Heartbeats are wall-clock times written by the holder and read by others: machines sharing a cache need clocks
that agree to well within the timeout (NTP does). Imports nothing from AITune or Torch-TensorRT.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from aitune_trt_aot.files import write_atomically

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_ENV = "AITUNE_TRT_AOT_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0
# The launcher's rank and world size where no process group is initialized (what AITune's distributed_context reads).
_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK")
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE")


def env_number(name: str, default: float) -> float:
    """The positive number in environment variable ``name``; ``default`` (with a warning) when it is not one."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number > 0:
        return number
    logger.warning("%s=%r is not a positive number; using %g.", name, value, default)
    return default


def lock_timeout() -> float:
    """Seconds without a heartbeat after which a claim is abandoned (``$AITUNE_TRT_AOT_LOCK_TIMEOUT``, default 60)."""
    return env_number(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)


def heartbeat_interval(timeout: float) -> float:
    """How often a holder refreshes its claim: six times per ``timeout``."""
    return timeout / 6


def _first_integer(names: tuple[str, ...]) -> int | None:
    for name in names:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return None


def rank_and_world_size() -> tuple[int | None, int | None]:
    """The rank and world size of this process: the process group's where one is initialized, else the launcher's."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:
        pass
    return _first_integer(_RANK_VARIABLES), _first_integer(_WORLD_SIZE_VARIABLES)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot, ``/proc``; empty where unknown): tells a reused pid."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


# Processes whose pids can be checked from here: same host name, same boot of the machine, same pid namespace.
PROCESS_SPACE = f"{socket.gethostname()}|{_read('/proc/sys/kernel/random/boot_id')}|{_pid_namespace()}"


@dataclass(frozen=True)
class Holder:
    """One process's claim on something, as stored in the claim's file.

    Attributes:
        host: The holder's host name.
        pid: Its process id on that host.
        rank: Its rank (None outside a launcher).
        world_size: The number of ranks (None outside a launcher).
        started: When the claim started (seconds since the epoch, the holder's clock).
        heartbeat: The holder's last sign of life (same clock).
        token: A random id telling this claim from any other.
        space: Where ``pid`` means this process (:data:`PROCESS_SPACE` of the holder).
        pid_start: When the process started (:func:`process_start`), so a reused pid is not taken for it.

    """

    host: str
    pid: int
    rank: int | None
    world_size: int | None
    started: float
    heartbeat: float
    token: str
    space: str = ""
    pid_start: str = ""

    def describe(self) -> str:
        """``rank 2 of 4 on host gpu-7`` inside a launcher, else ``process 1234 on host gpu-7``."""
        if self.rank is not None and self.world_size is not None and self.world_size > 1:
            return f"rank {self.rank} of {self.world_size} on host {self.host}"
        return f"process {self.pid} on host {self.host}"

    def to_json(self) -> dict[str, Any]:
        """The claim as JSON-safe values."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Holder | None:
        """The holder in ``data`` (what :meth:`to_json` gave), None where it is not one."""
        try:
            return cls(
                host=str(data["host"]),
                pid=int(data["pid"]),
                rank=None if data.get("rank") is None else int(data["rank"]),
                world_size=None if data.get("world_size") is None else int(data["world_size"]),
                started=float(data["started"]),
                heartbeat=float(data["heartbeat"]),
                token=str(data["token"]),
                space=str(data.get("space", "")),
                pid_start=str(data.get("pid_start", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def me() -> Holder:
    """A new claim's holder for this process (a fresh token), starting now."""
    rank, world_size = rank_and_world_size()
    now, pid = time.time(), os.getpid()
    return Holder(
        socket.gethostname(), pid, rank, world_size, now, now, uuid.uuid4().hex, PROCESS_SPACE, process_start(pid)
    )


def describe_me() -> str:
    """Who this process is, as :meth:`Holder.describe` words it (``rank 2 of 4 on host gpu-7``)."""
    return me().describe()


def pid_alive(pid: int, start: str = "") -> bool:
    """Whether process ``pid`` (started at ``start``, where given) runs here; a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return True  # no /proc to ask: trust the signal
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return not start or process_start(pid) == start


def gone(holder: Holder, timeout: float, now: float | None = None) -> str | None:
    """Why ``holder``'s claim is abandoned (the rules in the module docstring), None while it stands."""
    if holder.space and holder.space == PROCESS_SPACE:
        return None if pid_alive(holder.pid, holder.pid_start) else f"its process {holder.pid} is no longer running"
    age = (time.time() if now is None else now) - holder.heartbeat
    if age > timeout:
        return f"its last heartbeat was {age:.0f} s ago (the limit is {timeout:g} s, {LOCK_TIMEOUT_ENV})"
    return None


def read_holder(path: Path) -> Holder | None:
    """The holder stored in ``path``; None where the file is missing or holds no holder."""
    try:
        return Holder.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def write_holder(path: Path, holder: Holder) -> None:
    """Write ``holder`` to ``path`` atomically (readers see the old content or the new, never half)."""
    text = json.dumps(holder.to_json())
    write_atomically(path, lambda tmp: tmp.write_text(text))


class Heartbeat:
    """A daemon thread that refreshes a claim's file until stopped or until the claim is no longer its holder's.

    Every :func:`heartbeat_interval` it calls ``refresh(holder)`` with the heartbeat set to now; ``refresh``
    returns False once the claim is lost (its file now holds another token), which ends the thread.
    """

    def __init__(self, holder: Holder, refresh: Callable[[Holder], bool], interval: float) -> None:
        """Start beating at once."""
        self.holder = holder
        self.lost = False
        self._refresh = refresh
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"aitune_trt_aot heartbeat {holder.token[:8]}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.holder = replace(self.holder, heartbeat=time.time())
            try:
                if not self._refresh(self.holder):
                    self.lost = True
                    return
            except OSError as error:  # a shared filesystem gone for a moment: try again at the next beat
                logger.info("Heartbeat of %s failed (%s); retrying.", self.holder.describe(), error)

    def stop(self) -> None:
        """Stop beating and wait for the thread."""
        self._stop.set()
        self._thread.join()
