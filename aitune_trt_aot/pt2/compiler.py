"""The C++ compiler Inductor runs: as the package compile's reuse digests see it, and the linker it is told to use."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path


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


def gold_link(words: list[str]) -> list[str] | None:
    """The link command ``words`` run with GNU gold, where the machine has ``ld.gold``; None otherwise.

    None too when the command already names a linker. gold links a package's library in about half GNU ld's time
    (0.28 s against 0.14 s for a small package on the CPU machine; docs/benchmark.md).
    """
    if any(word.startswith("-fuse-ld=") for word in words) or shutil.which("ld.gold") is None:
        return None
    return [words[0], GOLD, *words[1:]]
