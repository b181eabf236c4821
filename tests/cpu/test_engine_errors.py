"""CPU: how engine failures that TensorRT only logs are detected (``engine_errors``).

Torch-TensorRT's C++ logger writes its lines to file descriptor 2 from C++; these tests write the same bytes to a
watched descriptor with ``os.write`` (the same system call), without TensorRT. The GPU test
(tests/gpu/test_engine_errors_gpu.py) makes a real engine call fail.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aitune_trt_aot.engine_errors import CheckedEngines, ErrorLogWatch, error_message
from aitune_trt_aot.errors import AitrtAotError, EngineCallError
from tests.support.processes import run_python

ENQUEUE_ERROR = (
    b"ERROR: [Torch-TensorRT] - IExecutionContext::enqueueV3: Error Code 1: Myelin ([myelin_graph.h:attachExceptionMsg"
    b"ToGraph:1135] cuDNN graph compilation failed: No valid engine configs for Matmul_MUL_)\n"
)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[ErrorLogWatch, int, Path]]:
    """A watch of a descriptor that stands for standard error, writing through to a file."""
    target = tmp_path / "stderr.txt"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    watch = ErrorLogWatch(fd)
    try:
        yield watch, fd, target
    finally:
        watch.stop()
        os.close(fd)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (ENQUEUE_ERROR, "IExecutionContext::enqueueV3: Error Code 1: Myelin"),
        (b"INTERNAL_ERROR: [Torch-TensorRT] - Assertion failed: x\n", "Assertion failed: x"),
        (b"\x1b[0;31mERROR: \x1b[0m[Torch-TensorRT - Debug Build] - Error Code 2: OutOfMemory\n", "Error Code 2"),
        (b"WARNING: [Torch-TensorRT] - Using default stream in enqueueV3()\n", None),
        (b"ERROR: my own program's message\n", None),
        (b"INFO: [Torch-TensorRT] - ERROR: quoted\n", None),
    ],
)
def test_error_message_reads_torch_tensorrt_error_lines_only(line: bytes, message: str | None) -> None:
    found = error_message(line)
    if message is None:
        assert found is None
    else:
        assert found is not None and found.startswith(message)


def test_watch_counts_error_lines_and_passes_every_byte_through(watched) -> None:
    watch, fd, target = watched
    mark = watch.mark()
    os.write(fd, b"plain output\nWARNING: [Torch-TensorRT] - a warning\n")
    assert watch.errors_since(mark) == []
    os.write(fd, ENQUEUE_ERROR)
    (message,) = watch.errors_since(mark)
    assert message.startswith("IExecutionContext::enqueueV3: Error Code 1")
    later = watch.mark()
    assert later == mark + 1 and watch.errors_since(later) == []
    watch.stop()
    assert target.read_bytes() == b"plain output\nWARNING: [Torch-TensorRT] - a warning\n" + ENQUEUE_ERROR


def test_a_line_written_in_pieces_counts_once_complete(watched) -> None:
    watch, fd, _ = watched
    mark = watch.mark()
    for piece in (b"ERROR: ", b"[Torch-TensorRT] - ", b"Error Code 1: x", b"\n"):  # std::cerr writes each << part
        os.write(fd, piece)
    assert len(watch.errors_since(mark)) == 1


def test_watch_restarts_when_the_descriptor_is_replaced(watched, tmp_path: Path) -> None:
    watch, fd, _ = watched
    watch.mark()
    assert watch.active
    other = tmp_path / "captured.txt"
    replacement = os.open(other, os.O_WRONLY | os.O_CREAT)
    os.dup2(replacement, fd)  # what pytest's output capture does to fd 2 for each test
    os.close(replacement)
    assert not watch.active
    mark = watch.mark()
    assert watch.active
    os.write(fd, ENQUEUE_ERROR)
    assert len(watch.errors_since(mark)) == 1
    watch.stop()
    assert other.read_bytes() == ENQUEUE_ERROR


def test_a_replacement_put_back_keeps_output_flowing_and_unwraps(watched) -> None:
    """The descriptor replaced around checked calls, then put back (AITune's ``control_output`` around builds).

    The put-back descriptor is the watch's earlier pipe: what is written to it still arrives, the next check unwraps
    it (its guardian ends: no chain of pipes grows per build), and errors are counted again. Seen on the GPU host:
    every line written to standard error after a second tune was lost.
    """
    watch, fd, target = watched
    watch.mark()
    os.write(fd, b"before\n")
    for round_number in range(3):
        saved = os.dup(fd)
        sink = os.open(os.devnull, os.O_WRONLY)
        os.dup2(sink, fd)
        os.close(sink)
        watch.mark()  # an engine call inside the window: the watch wraps the sink
        os.write(fd, b"suppressed\n")
        os.dup2(saved, fd)
        os.close(saved)
        os.write(fd, f"put back {round_number}\n".encode())
        mark = watch.mark()
        os.write(fd, ENQUEUE_ERROR)
        assert len(watch.errors_since(mark)) == 1
        deadline = time.monotonic() + 10
        while sum(g.poll() is None for g in watch._retired) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [g for g in watch._retired if g.poll() is None], "retired guardians end once unwrapped"
    watch.stop()
    lines = target.read_bytes().splitlines()
    assert lines.count(ENQUEUE_ERROR.strip()) == 3
    assert [line for line in lines if line != ENQUEUE_ERROR.strip()] == [
        b"before",
        b"put back 0",
        b"put back 1",
        b"put back 2",
    ]


def test_output_larger_than_a_pipe_does_not_block_the_writer(watched) -> None:
    watch, fd, target = watched
    mark = watch.mark()
    chunk = b"x" * 1023 + b"\n"
    for _ in range(1024):  # 1 MiB: 16 times a Linux pipe's buffer; the drain thread must keep emptying it
        os.write(fd, chunk)
    assert watch.errors_since(mark) == []
    watch.stop()
    assert target.stat().st_size == 1024 * 1024


def test_checked_engines_raise_when_tensorrt_logged_an_error(watched) -> None:
    watch, fd, _ = watched

    def failing_engine(x: torch.Tensor) -> torch.Tensor:
        os.write(fd, ENQUEUE_ERROR)
        return torch.empty_like(x)  # what a failed enqueue returns: buffers nobody wrote

    checked = CheckedEngines(failing_engine, "model.ep (exported_program)", watch)
    with pytest.raises(EngineCallError) as raised:
        checked(torch.zeros(3, 4))
    text = str(raised.value)
    assert isinstance(raised.value, AitrtAotError) and isinstance(raised.value, RuntimeError)
    assert "model.ep (exported_program)" in text  # the engines
    assert "[(3, 4)]" in text  # the input shapes
    assert "cuDNN graph compilation failed" in text  # TensorRT's message
    assert "load the model again" in text  # what to do
    # The failure belongs to that call only: the next one, with nothing logged, returns its outputs.
    checked.runner = lambda x: x + 1
    assert torch.equal(checked(torch.zeros(2)), torch.ones(2))


def test_checked_engines_pass_results_and_exceptions_through(watched) -> None:
    watch, fd, _ = watched

    def chatty_engine(x: torch.Tensor) -> torch.Tensor:
        os.write(fd, b"WARNING: [Torch-TensorRT] - something benign\n")
        return x * 2

    assert torch.equal(CheckedEngines(chatty_engine, "m", watch)(torch.ones(2)), torch.full((2,), 2.0))

    def raising_engine(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("execute_engine.cpp: input shape out of range")

    with pytest.raises(RuntimeError, match="out of range") as raised:
        CheckedEngines(raising_engine, "m", watch)(torch.ones(2))
    assert not isinstance(raised.value, EngineCallError)

    def raising_after_logging(x: torch.Tensor) -> torch.Tensor:
        os.write(fd, ENQUEUE_ERROR)
        raise RuntimeError("boom")

    with pytest.raises(EngineCallError) as raised:
        CheckedEngines(raising_after_logging, "m", watch)(torch.ones(2))
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_checked_engines_forward_attributes_of_the_loaded_artifact(watched) -> None:
    watch, _, _ = watched
    loaded = torch.nn.Linear(2, 2)
    checked = CheckedEngines(loaded, "m", watch)
    assert checked.weight is loaded.weight
    with pytest.raises(AttributeError):
        checked.no_such_attribute  # noqa: B018


def test_errors_from_other_threads_are_seen_never_missed(watched) -> None:
    """Errors are process-wide: one logged by another thread during a call fails that call (a false alarm at worst)."""
    watch, fd, _ = watched
    started, release = threading.Event(), threading.Event()

    def slow_engine(x: torch.Tensor) -> torch.Tensor:
        started.set()
        release.wait(5)
        return x

    failures: list[BaseException] = []

    def call() -> None:
        try:
            CheckedEngines(slow_engine, "m", watch)(torch.ones(1))
        except EngineCallError as error:
            failures.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    started.wait(5)
    os.write(fd, ENQUEUE_ERROR)
    release.set()
    caller.join(5)
    assert len(failures) == 1


def test_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import aitune_trt_aot.engine_errors as engine_errors

    monkeypatch.setenv(engine_errors.WATCH_ENV, "0")
    assert engine_errors.process_watch() is None
    checked = CheckedEngines(lambda x: x, "model.ep")
    assert checked.watch is None and "not checked" in caplog.text
    assert torch.equal(checked(torch.ones(1)), torch.ones(1))


def test_real_standard_error_in_a_fresh_process(tmp_path: Path) -> None:
    """The process's own fd 2: errors raise, and everything written reaches the real standard error once, in order."""
    script = tmp_path / "probe.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            import torch
            from aitune_trt_aot.engine_errors import CheckedEngines
            from aitune_trt_aot.errors import EngineCallError

            def engine(x):
                os.write(2, {ENQUEUE_ERROR!r})
                return x

            print("before", file=sys.stderr, flush=True)
            checked = CheckedEngines(engine, "probe")
            try:
                checked(torch.ones(1))
            except EngineCallError:
                print("raised", flush=True)
            print("after", file=sys.stderr, flush=True)
            """
        )
    )
    result = run_python(str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "raised"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[lines.index("before") :] == ["before", ENQUEUE_ERROR.decode().strip(), "after"], result.stderr


def test_standard_error_survives_aitunes_output_control_around_checked_calls(tmp_path: Path) -> None:
    """A fresh process: checked calls inside AITune's ``control_output`` (around every build and validation), twice.

    Everything written to standard error outside those windows reaches it, in order.
    """
    script = tmp_path / "windows.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import torch
            import aitune_trt_aot  # noqa: F401  (makes `tensorrt` importable for AITune)
            from aitune.utils.logging import control_output
            from aitune_trt_aot.engine_errors import CheckedEngines

            checked = CheckedEngines(lambda x: x + 1, "probe")
            checked(torch.ones(1))
            print("first", file=sys.stderr, flush=True)
            for window in range(2):
                with control_output():
                    checked(torch.ones(1))
                    print("hidden", file=sys.stderr, flush=True)
                print(f"after window {window}", file=sys.stderr, flush=True)
                checked(torch.ones(1))
            print("last", file=sys.stderr, flush=True)
            """
        )
    )
    result = run_python(str(script), timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [
        line
        for line in result.stderr.splitlines()
        if line in ("first", "hidden", "after window 0", "after window 1", "last")
    ]
    assert lines == ["first", "after window 0", "after window 1", "last"], result.stderr[-2000:]


@pytest.mark.parametrize("ending", ["os._exit(3)", "os.kill(os.getpid(), 9)"])
def test_a_process_that_dies_abruptly_keeps_its_last_words(tmp_path: Path, ending: str) -> None:
    """What was written to the watched standard error just before ``os._exit`` or SIGKILL still reaches it.

    Native libraries that end the process (``exit()`` from C, a fatal signal) give the drain thread no chance to pass
    on the last output: the guardian process does.
    """
    script = tmp_path / "dies.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from aitune_trt_aot.engine_errors import process_watch

            held = [os.open(os.devnull, os.O_RDONLY) for _ in range(16)]  # the pipe's descriptors above 9, as
            process_watch().mark()  # in a process that imported torch (dash refused those in redirections)
            os.write(2, b"FATAL: the reason this process ends\\n")
            {ending}
            """
        )
    )
    result = run_python(str(script), timeout=60)
    assert result.returncode != 0
    assert "FATAL: the reason this process ends" in result.stderr
