"""Skip AOTInductor's C++ compiles and links whose inputs did not change since they last ran (``reused_objects``).

AOTInductor compiles a package's generated C++ in Inductor's cache folder, in files named by the hash of their code,
compiles them at every build, even when it compiled the same code before, and deletes the objects once linked. For a
graph of TensorRT engines the wrapper's code depends on the graph's inputs, outputs and engine calls, not on the
weights (those live in the engines), and its compile is most of the package compile: 4.6 s of 5.5 s for the
benchmark MLP on an H100 (docs/benchmark.md, "Where a ``.pt2`` tune goes"). A rebuild of the same architecture (new
weights, a build-cache miss) therefore compiles the same wrapper again, and links the same objects again (0.5-0.6 s
on an H200 host once the wrapper's object was reused).

While :func:`reused_objects` is active, each file a compile-only command (``-c ... -o X.o``) or a link of objects
into a shared library (``X.o ... -shared -o X.so``) writes is kept beside it (``X.o.aitune_trt_aot-kept``) with a
stamp (``X.o.aitune_trt_aot-stamp``); a later command is skipped, the kept file put back in its place, when the stamp
holds the digest of the same inputs: the command line, the source file's bytes, the headers beside it and the files
it names after ``-include`` (the precompiled header's source), the bytes of the objects a link reads, torch's version
and the compiler's own ``--version``. Anything else (a precompiled header, the constants' assembly, a source compiled
straight into a library, a missing or different stamp, an unreadable input) runs as before. AOTInductor's own steps
after the link (weights appended to the library) run on the file put back as on a freshly linked one. The stamp is
removed before a command runs and written, atomically, after its output is kept, so a failed or interrupted command
never leaves a stamp that vouches for a file. A wrapper compile that does run goes through ``pt2.wrapper_split``
(AOTInductor's runtime compiled once per machine, then only the model's own code), a link that does run through
``pt2.link_stubs`` (against small stand-ins of torch's largest libraries).
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch._inductor.runtime.cache_dir_utils import cache_dir

from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.pt2.compiler import compiler_version, included_files, linked_objects
from aitune_trt_aot.pt2.link_stubs import link_with_stubs
from aitune_trt_aot.pt2.wrapper_split import RUNTIME_FOLDER, compile_in_two

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


def _output(words: list[str], suffix: str) -> Path | None:
    """The file after ``-o`` when its name ends with ``suffix``; None otherwise."""
    if "-o" not in words:
        return None
    position = words.index("-o") + 1
    if position >= len(words) or not words[position].endswith(suffix):
        return None
    return Path(words[position])


def object_target(words: list[str]) -> Path | None:
    """The object file a compile-only command of one C++ source writes; None for any other command.

    Precompiled headers and the constants' assembly always run; links are :func:`link_target`'s.
    """
    if "-c" not in words or sum(w.endswith(SOURCE_SUFFIXES) for w in words) != 1:
        return None
    return _output(words, ".o")


def link_target(words: list[str]) -> Path | None:
    """The shared library a link of object files only writes; None for any other command.

    A command that also compiles a source (C++ or assembly) into the library always runs: the digest reads objects.
    """
    if "-shared" not in words or "-c" in words or not linked_objects(words):
        return None
    if any(w.endswith((*SOURCE_SUFFIXES, ".S", ".s")) for w in words):
        return None
    return _output(words, ".so")


def reuse_target(words: list[str]) -> Path | None:
    """The file a command whose output can be reused writes (:func:`object_target`, :func:`link_target`)."""
    return object_target(words) or link_target(words)


def inputs_digest(words: list[str], cwd: str) -> str:
    """SHA-256 of what the command's output depends on (module docstring); ``OSError`` if a file cannot be read."""
    digest = hashlib.sha256()
    digest.update(shlex.join(words).encode())
    digest.update(torch.__version__.encode())
    digest.update(compiler_version(words[0]))
    base = Path(cwd)
    sources = [base / w for w in words if w.endswith(SOURCE_SUFFIXES)]
    included = included_files(words, cwd)
    beside = sorted({h for s in sources for h in s.parent.iterdir() if h.suffix in HEADER_SUFFIXES})
    for path in [*sources, *included, *beside]:
        digest.update(str(path).encode())
        digest.update(path.read_bytes().split(BUILD_NOTES, 1)[0])
    for path in (base / w for w in linked_objects(words)):
        digest.update(str(path).encode())
        digest.update(path.read_bytes())  # whole: compiled bytes carry no build notes
    return digest.hexdigest()


def _beside(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def _skipping(
    original: Callable[[str, str], None], reused: list[str], before_first: Callable[[], None] | None
) -> Callable[[str, str], None]:
    first = [before_first] if before_first is not None else []

    def run(cmd_line: str, cwd: str) -> None:
        if first:
            first.pop()()
        words = shlex.split(cmd_line)
        target = reuse_target(words)
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
                write_atomically(target, lambda tmp: shutil.copy2(kept, tmp))  # copy2: a library keeps its mode
                logger.info("Reusing %s: built before from the same inputs and command.", target.name)
                reused.append(target.name)
                return None
        except OSError:
            pass  # no stamp, or the kept file cannot be put back: run the command
        stamp.unlink(missing_ok=True)
        folder = Path(cache_dir()) / RUNTIME_FOLDER
        if link_target(words) is not None:
            done = link_with_stubs(words, cwd, original, folder)
        else:
            done = compile_in_two(words, cwd, original, folder)
        if not done:
            original(cmd_line, cwd)
        try:
            write_atomically(kept, lambda tmp: shutil.copy2(target, tmp))
            write_atomically(stamp, lambda tmp: tmp.write_text(digest))
        except OSError as error:  # the output stands; only its reuse is lost
            logger.debug("%s is not kept for reuse (%s).", target.name, error)
        return None

    return run


@contextmanager
def reused_objects(before_commands: Callable[[], None] | None = None) -> Iterator[list[str]]:
    """While active, skip Inductor's compiles and links of unchanged inputs; yields the names of those skipped.

    ``before_commands`` is called once, before the first C++ command (run or skipped): Inductor's code generation is
    over by then.
    """
    from torch._inductor import cpp_builder

    reused: list[str] = []
    with _PATCH_LOCK:
        original = cpp_builder._run_compile_cmd
        cpp_builder._run_compile_cmd = _skipping(original, reused, before_commands)
        try:
            yield reused
        finally:
            cpp_builder._run_compile_cmd = original
