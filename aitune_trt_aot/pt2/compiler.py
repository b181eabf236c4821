"""The C++ compiler Inductor runs: as the package compile's reuse digests see it, and the linker it is told to use."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import subprocess
from pathlib import Path

from aitune_trt_aot.files import write_atomically


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


GOLD = "-fuse-ld=gold"
GOLD_FAILED = "gold-failed"  # the prefix of the file that remembers, per compiler, a gold link that failed


def failure_reason(error: BaseException) -> str:
    """What a failed command said, in one line: its output's lines that name an error (three at most), else the first.

    Reads the output Inductor's ``CppCompileError`` carries (its message starts with a generic "C++ compile error").
    """
    output = getattr(error, "output", None)
    text = output if isinstance(output, str) and output.strip() else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return "; ".join((errors or lines or [type(error).__name__])[:3])


def gold_failure_file(compiler: str, folder: Path) -> Path:
    """The file in ``folder`` that says gold failed a link of ``compiler`` (named by the compiler's version)."""
    return folder / f"{GOLD_FAILED}-{hashlib.sha256(compiler_version(compiler)).hexdigest()[:16]}"


def gold_link(words: list[str], folder: Path) -> list[str] | None:
    """The link command ``words`` run with GNU gold, where the machine has ``ld.gold``; None otherwise.

    None too when the command already names a linker, or when gold failed a link of this compiler before
    (:func:`remember_gold_failure` in ``folder``). gold links a package's library in about half GNU ld's time
    (0.28 s against 0.14 s for a small package on the CPU machine; docs/benchmark.md).
    """
    if any(word.startswith("-fuse-ld=") for word in words) or shutil.which("ld.gold") is None:
        return None
    if gold_failure_file(words[0], folder).exists():
        return None
    return [words[0], GOLD, *words[1:]]


def remember_gold_failure(words: list[str], folder: Path, reason: str) -> None:
    """Write ``reason`` where :func:`gold_link` finds it, so later links of this compiler go to GNU ld at once.

    A failed gold link costs a link (0.24 s for the MLP's package on an H100) before GNU ld's; once per machine is
    enough. Not written (nothing else changes) when the folder cannot be written.
    """
    with contextlib.suppress(OSError):
        write_atomically(gold_failure_file(words[0], folder), lambda tmp: tmp.write_text(reason + "\n"))
