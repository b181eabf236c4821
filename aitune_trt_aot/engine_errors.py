"""Engine calls that TensorRT fails end in an error, never in unwritten output buffers.

Torch-TensorRT 2.14's runtimes ignore what ``IExecutionContext::enqueueV3`` returns and set no TensorRT error
recorder. An engine call that TensorRT fails (on TensorRT-RTX, typically the just-in-time kernel compile at a new
input shape, under GPU memory pressure: ``Error Code 1: Myelin (... cuDNN graph compilation failed ...)``) returns
its output tensors unwritten, and the only trace is the line Torch-TensorRT's C++ logger writes to the process's
standard error: ``ERROR: [Torch-TensorRT] - IExecutionContext::enqueueV3: Error Code 1: ...``. Every engine the
C++ runtime runs logs there, whatever the artifact format: ``exported_program``, ``torchscript`` and the engines
inside a ``.pt2`` package.

:class:`ErrorLogWatch` therefore reads standard error. On first use it puts a pipe in place of file descriptor 2;
a daemon thread copies everything written there, byte for byte, to the original standard error and counts the
lines Torch-TensorRT's logger writes at ERROR or INTERNAL_ERROR severity. :class:`CheckedEngines` wraps a loaded
artifact: a call that such a line was logged during raises :class:`~aitune_trt_aot.errors.EngineCallError`, naming
the engines, the input shapes and TensorRT's message. Checking costs two non-blocking polls of the pipe and one
``fstat`` per call (a few microseconds, host only); a CUDA-graph replay runs no TensorRT code and is not checked.

Limits, by construction:
- errors are process-wide: a TensorRT error logged by another thread's engine call while this call runs fails this
  call too (a false alarm, never a missed failure);
- a user who lowers Torch-TensorRT's C++ log level below ERROR (``torch_tensorrt.logging.internal_errors()``)
  silences the logger this reads: each activation warns when it finds the level there;
- ``AITUNE_TRT_AOT_WATCH_ENGINE_ERRORS=0`` leaves standard error alone (nothing is checked; a warning says so).
If the process's file descriptor 2 is replaced after the watch started (``pytest``'s output capture does that per
test; AITune does it around every backend build and validation, ``aitune.utils.logging.control_output``), the next
check wraps the new one; when the replacement is undone, fd 2 is one of this watch's earlier pipes again, and the next
check unwraps it: the new pipe forwards to where that earlier pipe did, never through it.

A process that dies abruptly (a native library calling ``exit``, ``os._exit``, a fatal signal) would take with it
what was written to standard error but not yet passed on: often the very message that says why it died. So a small
guardian process (``sh`` and ``cat``) holds the pipe's read end too and reads nothing while this process lives; when
this process is gone it passes on whatever is left in the pipe, then what later writers (child processes that
inherited standard error) write, until the last of them closes it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import re
import select
import struct
import subprocess
import termios
import threading
import time
from collections import deque
from typing import Any

import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot.errors import EngineCallError

logger = logging.getLogger(__name__)

WATCH_ENV = "AITUNE_TRT_AOT_WATCH_ENGINE_ERRORS"
STDERR_FD = 2
_READ_SIZE = 1 << 16
# The drain thread leaves a short write in the pipe this long before taking it: a process that dies right after writing
# its last words (``os._exit``, ``exit()`` from C, a fatal signal) then leaves them to the guardian instead of losing
# them between the thread's read and its write. More than _SETTLE_BYTES waiting is taken at once, so a burst of output
# never waits on a full pipe.
_SETTLE_SECONDS = 0.05
_SETTLE_BYTES = 1 << 14
# When fd 2 is one of the watch's earlier pipes again, its guardian copies what was written to it meanwhile: the new
# pipe waits this long at most for that copy to take it all, so that later output does not pass it.
_PUT_BACK_WAIT_SECONDS = 1.0
_KEPT_MESSAGES = 32
# Forward descriptors of watches whose pipe someone replaced on fd 2 (and may put back): at most this many are kept.
_KEPT_REPLACED = 8
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
# Torch-TensorRT's C++ logger (core/util/logging/TorchTRTLogger.cpp): "<SEVERITY>: <prefix><message>", the default
# prefix "[Torch-TensorRT] - ", optionally coloured.
_ERROR_LINE = re.compile(rb"^(?:INTERNAL_ERROR|ERROR): (\[Torch-TensorRT[^\]]*\] - )?(?P<message>.*)$")


def error_message(line: bytes) -> str | None:
    """TensorRT's message if ``line`` is one Torch-TensorRT's logger wrote at ERROR or INTERNAL_ERROR, else None.

    Only lines carrying Torch-TensorRT's prefix count, so that a program's own ``ERROR:`` lines do not.
    """
    match = _ERROR_LINE.match(_ANSI.sub(b"", line).rstrip(b"\r\n"))
    if match is None or match.group(1) is None:
        return None
    return match.group("message").decode("utf-8", errors="replace").strip()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError:  # the original standard error is gone: keep counting, drop the text
            return
        view = view[written:]


class ErrorLogWatch:
    """Counts the error lines Torch-TensorRT's logger writes to standard error, passing all output through.

    Use :meth:`mark` before an engine call and :meth:`errors_since` after it. Thread-safe.
    """

    def __init__(self, fd: int = STDERR_FD) -> None:
        """Watch file descriptor ``fd`` (standard error); nothing happens until :meth:`mark` is first called."""
        self._fd = fd
        self._lock = threading.Lock()
        self._read_fd: int | None = None
        self._forward_fd: int | None = None
        self._pipe_id: tuple[int, int] | None = None
        self._poll: Any = None  # the callers' poll of the pipe; the drain thread polls with its own
        self._partial = b""
        self._count = 0
        self._messages: deque[tuple[int, str]] = deque(maxlen=_KEPT_MESSAGES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guardian: subprocess.Popen | None = None
        self._retired: list[subprocess.Popen] = []
        self._alive_fd: int | None = None  # the guardian's lifeline: it goes on when this process closes it or dies
        # Pipe id -> forward descriptor, for pipes replaced on fd 2 while they were the watch's: if one is put back,
        # the next start forwards to its descriptor instead of stacking a pipe on it.
        self._replaced: dict[tuple[int, int], int] = {}

    @property
    def active(self) -> bool:
        """Whether the watch currently reads file descriptor ``fd``."""
        return self._pipe_id is not None and self._pipe_id == self._fd_id()

    def mark(self) -> int:
        """How many error lines were seen so far, after reading everything written until now.

        Starts the watch on first use, and again when something replaced the file descriptor since.
        """
        with self._lock:
            if self._pipe_id is None or self._pipe_id != self._fd_id():
                self._start()
            self._pump()
            return self._count

    def errors_since(self, mark: int) -> list[str]:
        """The messages of the error lines written since :meth:`mark` returned ``mark`` (empty if none)."""
        with self._lock:
            self._pump()
            if self._count == mark:
                return []
            return [message for number, message in self._messages if number > mark] or ["(message not kept)"]

    def stop(self) -> None:
        """Put the original file descriptor back, after passing on what is left in the pipe."""
        with self._lock:
            self._stop_locked()

    def forget_after_fork(self) -> None:
        """In a forked child: give it back the original standard error; the parent keeps reading the pipe."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._read_fd is not None:
            if self._pipe_id == self._fd_id():
                os.dup2(self._forward_fd, self._fd)  # type: ignore[arg-type]
            os.close(self._read_fd)
            os.close(self._forward_fd)  # type: ignore[arg-type]
        if self._alive_fd is not None:
            os.close(self._alive_fd)  # the guardian waits for the parent's copy only
        self._close_replaced()
        self._guardian, self._retired = None, []  # the parent's
        self._read_fd = self._forward_fd = self._pipe_id = self._poll = self._alive_fd = None
        self._partial = b""

    def _fd_id(self) -> tuple[int, int] | None:
        try:
            status = os.fstat(self._fd)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def _start(self) -> None:
        self._stop_locked(restore=False)
        current = self._fd_id()
        put_back = self._replaced.pop(current, None) if current is not None else None
        if put_back is not None:
            _wait_until_read(self._fd)  # its guardian passes on what was written to it first, before the new pipe's
        read_fd, write_fd = os.pipe()
        # The read end stays blocking: the guardian shares its open file description, and a non-blocking one would end
        # its copy at the first empty read. This process reads only what poll reports (``_pump``).
        forward_fd = put_back if put_back is not None else os.dup(self._fd)
        os.dup2(write_fd, self._fd)
        os.close(write_fd)
        self._read_fd, self._forward_fd = read_fd, forward_fd
        self._pipe_id = self._fd_id()
        self._poll = select.poll()
        self._poll.register(read_fd, select.POLLIN)
        guarded = _start_guardian(read_fd, forward_fd)
        self._guardian, self._alive_fd = guarded if guarded is not None else (None, None)
        self._stop = threading.Event()
        drain_poll = select.poll()  # a poll object must not be used by two threads at once
        drain_poll.register(read_fd, select.POLLIN)
        self._thread = threading.Thread(
            target=self._drain, args=(drain_poll, self._stop, read_fd), name="aitune-trt-aot-stderr", daemon=True
        )
        self._thread.start()

    def _stop_locked(self, restore: bool = True) -> None:
        if self._read_fd is None:
            return
        self._pump()
        if self._partial:
            _write_all(self._forward_fd, self._partial)  # type: ignore[arg-type]
            self._partial = b""
        self._stop.set()
        replaced = self._pipe_id != self._fd_id()
        if restore and not replaced:
            os.dup2(self._forward_fd, self._fd)  # type: ignore[arg-type]
        # The drain thread may be inside poll(): closing its descriptor under it is safe (poll returns POLLNVAL).
        os.close(self._read_fd)
        if replaced and not restore and self._pipe_id is not None:
            self._keep_replaced(self._pipe_id, self._forward_fd)  # type: ignore[arg-type]
        else:
            os.close(self._forward_fd)  # type: ignore[arg-type]
        if restore:
            self._close_replaced()
        if self._alive_fd is not None:
            os.close(self._alive_fd)  # the guardian passes on what writers still holding the pipe write, then ends
            # Kept until it ended (it may still copy children's output), so that it is reaped, never left a zombie.
            self._retired = [g for g in (*self._retired, self._guardian) if g is not None and g.poll() is None]
        self._guardian = None
        self._read_fd = self._forward_fd = self._pipe_id = self._poll = self._alive_fd = None

    def _close_replaced(self) -> None:
        """Close every kept forward descriptor of replaced pipes and forget them."""
        for kept in self._replaced.values():
            os.close(kept)
        self._replaced = {}

    def _keep_replaced(self, pipe_id: tuple[int, int], forward_fd: int) -> None:
        """Remember ``forward_fd`` for ``pipe_id`` (replaced on fd 2), closing the oldest beyond the limit."""
        self._replaced[pipe_id] = forward_fd
        while len(self._replaced) > _KEPT_REPLACED:
            os.close(self._replaced.pop(next(iter(self._replaced))))

    def _drain(self, poll: Any, stop: threading.Event, read_fd: int) -> None:
        while not stop.is_set():
            try:
                ready = poll.poll(200)
            except OSError:
                return
            if ready:
                has_data = any(events & select.POLLIN for _, events in ready)
                if has_data and _pending(read_fd) < _SETTLE_BYTES:
                    stop.wait(_SETTLE_SECONDS)
                with self._lock:
                    if stop.is_set():
                        return
                    self._pump()
                if not has_data:
                    stop.wait(0.2)  # hung up (no writer holds the pipe until fd 2 is put back): no busy loop

    def _pump(self) -> None:
        """Read what the pipe holds, pass it on, count its error lines. Caller holds the lock.

        Never blocks: it reads only after poll reports data (or a hang-up, where the read returns at once).
        """
        if self._read_fd is None:
            return
        while self._poll.poll(0):
            data = os.read(self._read_fd, _READ_SIZE)
            if not data:  # no writer holds the pipe and it is empty
                return
            _write_all(self._forward_fd, data)  # type: ignore[arg-type]
            self._scan(data)

    def _scan(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            message = error_message(line)
            if message is not None:
                self._count += 1
                self._messages.append((self._count, message))


def _pending(fd: int) -> int:
    """How many bytes wait in the pipe of ``fd``, either end (``FIONREAD``); 0 where that cannot be asked."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def _wait_until_read(fd: int, timeout: float = _PUT_BACK_WAIT_SECONDS) -> None:
    """Wait (at most ``timeout`` seconds) until nothing waits in the pipe of ``fd``: its reader took it all."""
    deadline = time.monotonic() + timeout
    while _pending(fd) > 0 and time.monotonic() < deadline:
        time.sleep(0.001)


def _start_guardian(read_fd: int, forward_fd: int) -> tuple[subprocess.Popen, int] | None:
    """Start the process that passes on what is left in the pipe once this one is gone.

    Returns it with the write end of its lifeline (closing that lets it go on), or None where no ``sh`` can be
    started: nothing then guards the pipe, and an abrupt exit may lose its last output.
    """
    alive_read, alive_write = os.pipe()  # not inheritable: only this process holds the write end
    # Waits for end-of-file on the lifeline (this process closed it, or died), then copies the pipe (its standard
    # input) to its standard output. The lifeline is read through /dev/fd: dash, /bin/sh on Debian and Ubuntu, refuses
    # redirections of descriptors above 9 ("Bad fd number"), and a process that imported torch holds dozens.
    script = f"cat /dev/fd/{alive_read} >/dev/null; exec cat"
    try:
        guardian = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=read_fd,
            stdout=forward_fd,
            stderr=subprocess.DEVNULL,  # never the pipe's write end: the guardian would wait for itself
            pass_fds=(alive_read,),
            start_new_session=True,  # a Ctrl-C to this process's group must not end it first
        )
    except OSError as error:
        logger.debug("No guardian for standard error (%s): an abrupt exit may lose its last output.", error)
        os.close(alive_write)
        return None
    finally:
        os.close(alive_read)
    return guardian, alive_write


_WATCH: ErrorLogWatch | None = None
_WATCH_LOCK = threading.Lock()


def process_watch() -> ErrorLogWatch | None:
    """The process's one watch of standard error, or None where ``AITUNE_TRT_AOT_WATCH_ENGINE_ERRORS=0``."""
    global _WATCH
    if os.environ.get(WATCH_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    with _WATCH_LOCK:
        if _WATCH is None:
            _WATCH = ErrorLogWatch()
            atexit.register(_WATCH.stop)
            os.register_at_fork(after_in_child=_WATCH.forget_after_fork)
    return _WATCH


def _c_logger_silences_errors() -> bool:
    """Whether Torch-TensorRT's C++ logger is set to drop ERROR lines (its runtime library not loaded: assume not)."""
    try:
        level = int(torch.ops.tensorrt.get_logging_level())
    except Exception:
        return False
    return level < 1  # nvinfer1::ILogger::Severity: kINTERNAL_ERROR=0, kERROR=1


class CheckedEngines:
    """Calls ``runner`` (a loaded artifact) and raises :class:`EngineCallError` when TensorRT logged a failure.

    ``what`` names the engines in messages (for example the artifact file and its format).
    """

    def __init__(self, runner: Any, what: str, watch: ErrorLogWatch | None = None) -> None:
        """Wrap ``runner``; ``watch`` defaults to the process's (None when switched off: calls are not checked)."""
        self.runner = runner
        self.what = what
        self.watch = watch if watch is not None else process_watch()
        if self.watch is None:
            logger.warning(
                "%s=0: engine calls of %s are not checked for TensorRT failures; a failed call returns unwritten "
                "outputs without an error.",
                WATCH_ENV,
                what,
            )
        elif _c_logger_silences_errors():
            logger.warning(
                "Torch-TensorRT's C++ log level is below ERROR: engine failures of %s are not logged, so they cannot "
                "be detected. Leave the level at ERROR or above (torch_tensorrt.logging.errors()).",
                what,
            )

    def __getattr__(self, name: str) -> Any:
        # Everything but the call is the loaded artifact's (engine settings, graph modules, ...).
        if name == "runner":
            raise AttributeError(name)
        return getattr(self.runner, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the engines; raise :class:`EngineCallError` if TensorRT logged an error while they ran."""
        if self.watch is None:
            return self.runner(*args, **kwargs)
        mark = self.watch.mark()
        try:
            outputs = self.runner(*args, **kwargs)
        except Exception as error:
            messages = self.watch.errors_since(mark)
            if messages:
                raise engine_call_error(self.what, args, kwargs, messages) from error
            raise
        messages = self.watch.errors_since(mark)
        if messages:
            raise engine_call_error(self.what, args, kwargs, messages)
        return outputs


def _shapes(args: tuple, kwargs: dict) -> list[Any]:
    return [tuple(leaf.shape) for leaf in pytree.tree_leaves((args, kwargs)) if hasattr(leaf, "shape")]


def engine_call_error(what: str, args: tuple, kwargs: dict, messages: list[str]) -> EngineCallError:
    """The error for an engine call of ``what`` during which TensorRT logged ``messages``."""
    shown = "; ".join(messages[:3]) + (f" (and {len(messages) - 3} more)" if len(messages) > 3 else "")
    return EngineCallError(
        f"TensorRT failed while running the engines of {what} on input shapes {_shapes(args, kwargs)}: {shown}. "
        "The outputs of this call were not computed, so none are returned. On TensorRT-RTX this usually means the "
        "kernel compile at a new input shape failed: because the GPU's memory is held (by other processes, or cached "
        "by PyTorch: torch.cuda.empty_cache() frees that), or because the shape is larger than its kernels handle "
        "(tune a smaller batch range). Free memory, then load the model again (ait.load, load_pt2): after a failed "
        "call, these engines fail at every shape they had not run before."
    )
