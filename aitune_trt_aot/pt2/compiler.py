"""The C++ compiler Inductor runs: as reuse digests see it, what its commands read, what a failed command said."""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

from aitune_trt_aot.files import write_atomically

logger = logging.getLogger(__name__)

# In a folder of things built once per machine (lighter headers, link stubs) that failed: why. Later builds skip them.
FAILED = "failed"


@functools.cache
def compiler_version(compiler: str) -> bytes:
    """What ``compiler --version`` prints (read once per process); a fixed text when it cannot be run."""
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return b"unknown compiler"


def included_files(words: list[str], cwd: str) -> list[Path]:
    """The files a compile command names after ``-include`` (Inductor's precompiled header's source), under ``cwd``."""
    return [Path(cwd) / words[i + 1] for i, word in enumerate(words[:-1]) if word == "-include"]


def with_paths(words: list[str], source: str, output: str) -> list[str]:
    """``words`` with its one C++ source (the word ending ``.cpp``) replaced by ``source``, ``-o``'s by ``output``."""
    out = words.index("-o") + 1
    return [output if i == out else source if w.endswith(".cpp") else w for i, w in enumerate(words)]


def linked_objects(words: list[str]) -> list[str]:
    """The object files a command reads (every ``.o`` word but the one after ``-o``)."""
    return [w for i, w in enumerate(words) if w.endswith(".o") and (i == 0 or words[i - 1] != "-o")]


def undefined_symbols(objects: list[Path]) -> list[str]:
    """The symbols the ``objects`` use but do not define (``nm -u``, weak references included), as ``nm`` lists them.

    ``OSError`` or ``CalledProcessError`` when ``nm`` cannot read an object.
    """
    listed = subprocess.run(
        ["nm", "-u", *map(str, objects)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [line.split()[-1] for line in listed.splitlines() if line.strip() and not line.endswith(":")]


def failure_reason(error: BaseException) -> str:
    """What a failed command said, in one line: its output's lines that name an error (three at most), else the first.

    Reads the output Inductor's ``CppCompileError`` carries (its message starts with a generic "C++ compile error").
    """
    output = getattr(error, "output", None)
    text = output if isinstance(output, str) and output.strip() else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return "; ".join((errors or lines or [type(error).__name__])[:3])


def remember_failure(folder: Path, reason: str) -> None:
    """Write :data:`FAILED`, holding ``reason``, into ``folder`` (atomically); a write that fails is only logged."""
    try:
        write_atomically(folder / FAILED, lambda tmp: tmp.write_text(reason + "\n"))
    except OSError as error:
        logger.debug("Could not remember the failure in %s (%s).", folder, error)


def failed_before(folder: Path) -> bool:
    """Whether ``folder`` holds a :data:`FAILED` marker (:func:`remember_failure`)."""
    return (folder / FAILED).is_file()
