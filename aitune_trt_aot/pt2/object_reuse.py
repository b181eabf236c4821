"""Skip AOTInductor's C++ compiles whose inputs did not change since they last ran (``reused_objects``).

AOTInductor compiles a package's generated C++ in Inductor's cache folder, in files named by the hash of their code,
compiles them at every build, even when it compiled the same code before, and deletes the objects once linked. For a
graph of TensorRT engines the wrapper's code depends on the graph's inputs, outputs and engine calls, not on the
weights (those live in the engines), and its compile is most of the package compile: 4.6 s of 5.5 s for the
benchmark MLP on an H100 (docs/benchmark.md, "Where a ``.pt2`` tune goes"). A rebuild of the same architecture (new
weights, a build-cache miss) therefore compiles the same wrapper again.

While :func:`reused_objects` is active, each object a compile-only command (``-c ... -o X.o``) writes is kept beside
it (``X.o.aitune_trt_aot-kept``) with a stamp (``X.o.aitune_trt_aot-stamp``); a later command is skipped, the kept
object put back in its place, when the stamp holds the digest of the same inputs: the command line, the source
file's bytes, the headers beside it and the files it names after ``-include`` (the precompiled header's source),
torch's version and the compiler's own ``--version``. Anything else (a link, a precompiled header, the constants'
assembly, a missing or different stamp, an unreadable input) runs as before. The stamp is removed before a compile
runs and written, atomically, after the object is kept, so a failed or interrupted compile never leaves a stamp that
vouches for an object.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from aitune_trt_aot.files import write_atomically

logger = logging.getLogger(__name__)

STAMP_SUFFIX = ".aitune_trt_aot-stamp"
KEPT_SUFFIX = ".aitune_trt_aot-kept"
# C++ sources only: the assembly AOTInductor writes for constants (``*.weights.S``) pulls in data the digest would not
# see, and is compiled afresh every time.
SOURCE_SUFFIXES = (".cpp", ".cc", ".cxx")
HEADER_SUFFIXES = (".h", ".hpp")
# After compiling, Inductor appends the commands it ran to the source as comments, from this line on; a later build
# finds the file (named by the hash of its code) and compiles it with them. They are not code: left out of the digest.
BUILD_NOTES = b"\n// Compile cmd\n"
_PATCH_LOCK = threading.RLock()  # one wrapper at a time; a nested use wraps the wrapper (harmless)


def object_target(words: list[str]) -> Path | None:
    """The object file a compile-only command of one C++ source writes; None for any other command.

    Links, precompiled headers and the constants' assembly always run.
    """
    if "-c" not in words or "-o" not in words or sum(w.endswith(SOURCE_SUFFIXES) for w in words) != 1:
        return None
    position = words.index("-o") + 1
    if position >= len(words) or not words[position].endswith(".o"):
        return None
    return Path(words[position])


@functools.cache
def _compiler_version(compiler: str) -> bytes:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return b"unknown compiler"


def inputs_digest(words: list[str], cwd: str) -> str:
    """SHA-256 of what the command's object depends on (module docstring); ``OSError`` if a file cannot be read."""
    digest = hashlib.sha256()
    digest.update(shlex.join(words).encode())
    digest.update(torch.__version__.encode())
    digest.update(_compiler_version(words[0]))
    base = Path(cwd)
    sources = [base / w for w in words if w.endswith(SOURCE_SUFFIXES)]
    included = [base / words[i + 1] for i, w in enumerate(words[:-1]) if w == "-include"]
    beside = sorted({h for s in sources for h in s.parent.iterdir() if h.suffix in HEADER_SUFFIXES})
    for path in [*sources, *included, *beside]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes().split(BUILD_NOTES, 1)[0])
    return digest.hexdigest()


def _beside(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def _skipping(original: Callable[[str, str], None], reused: list[str]) -> Callable[[str, str], None]:
    def run(cmd_line: str, cwd: str) -> None:
        words = shlex.split(cmd_line)
        target = object_target(words)
        if target is None:
            return original(cmd_line, cwd)
        target = Path(cwd) / target
        try:
            digest = inputs_digest(words, cwd)
        except OSError as error:
            logger.debug("Compiling %s: its inputs cannot be read for reuse (%s).", target.name, error)
            return original(cmd_line, cwd)
        stamp, kept = _beside(target, STAMP_SUFFIX), _beside(target, KEPT_SUFFIX)
        try:
            if stamp.read_text() == digest and kept.is_file():
                write_atomically(target, lambda tmp: shutil.copyfile(kept, tmp))
                logger.info("Reusing %s: compiled before from the same code and command.", target.name)
                reused.append(target.name)
                return None
        except OSError:
            pass  # no stamp, or the kept object cannot be put back: compile
        stamp.unlink(missing_ok=True)
        original(cmd_line, cwd)
        try:
            write_atomically(kept, lambda tmp: shutil.copyfile(target, tmp))
            write_atomically(stamp, lambda tmp: tmp.write_text(digest))
        except OSError as error:  # the object stands; only its reuse is lost
            logger.debug("%s is not kept for reuse (%s).", target.name, error)
        return None

    return run


@contextmanager
def reused_objects() -> Iterator[list[str]]:
    """While active, skip Inductor's object compiles whose inputs are unchanged; yields the names of those skipped."""
    from torch._inductor import cpp_builder

    reused: list[str] = []
    with _PATCH_LOCK:
        original = cpp_builder._run_compile_cmd
        cpp_builder._run_compile_cmd = _skipping(original, reused)
        try:
            yield reused
        finally:
            cpp_builder._run_compile_cmd = original
