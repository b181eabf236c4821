"""The package library's link against small stand-ins of torch's libraries: the same library, in a third of the time.

AOTInductor links each package's library with ``-ltorch -ltorch_cpu ...`` (on the GPU also c10, c10_cuda,
torch_cuda). GNU ld loads every dynamic symbol of a library that may resolve a reference: libtorch_cpu.so exports
about 75,000 (C++ names), and loading them is most of the link. On the CPU machine the link of a small package took
0.55-0.75 s, 0.13-0.15 s of it with no reference to resolve, and as long (0.6 s) for an object that held nothing but
the wrapper's 143 undefined references (docs/benchmark.md, 2026-12-08). The wrapper needs a few dozen of those
symbols.

So the link runs against *stubs*: for each library of the command with at least :data:`STUB_MIN_SYMBOLS` exported
symbols (found as ld finds it, on the command's ``-L`` folders), a shared library with the same ``SONAME`` that
defines, with the same kind (function or data, global or weak), exactly those of its symbols that the command's
objects leave undefined and that no library before it on the command defines. ld then resolves each reference to the
library it resolved it to before, records the same ``NEEDED`` entries (under ``--as-needed`` too), and the linked
library is loaded against the real ones, found by ``SONAME`` as before; a stub holds no code and is never loaded.
Stubs are kept in :data:`STUBS_FOLDER` beside the wrapper's runtime objects, in a folder named by a digest of the
compiler, the libraries (path, size, modification time, in order) and the references: a later link with the same
references (most packages of one torch build) reads no library.

Anything unusual keeps AOTInductor's link: a library whose symbols carry versions (``name@VERSION``) or that has no
``SONAME``, a tool (``nm``, ``readelf``) that fails, a stub that does not build. A link against stubs that fails runs
again against the real libraries (:func:`link_with_stubs` returns False), and its stubs' folder remembers it
(``compiler.FAILED``, with the linker's words): later links with the same stubs run as written. One cause nm cannot rule
out: a reference to a thread-local variable of the library, which a stub defines as plain data.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aitune_trt_aot.pt2.compiler import (
    failed_before,
    failure_reason,
    linked_objects,
    remember_failure,
    undefined_symbols,
)

logger = logging.getLogger(__name__)

STUBS_FOLDER = "link-stubs"
READY = "stubbed"  # in a folder of stubs, written last: the libraries it holds stubs of, one name a line
STUB_MIN_SYMBOLS = 1000  # smaller libraries are read fast enough: linked as they are
# nm's letters for the defined symbols a stub may stand in for: the kind of the stand-in.
_KINDS = {"T": "function", "i": "function", "W": "weak function"}
_KINDS.update(dict.fromkeys("BDGRSu", "object"))
_KINDS["V"] = "weak object"
_TOOL_TIMEOUT = 60


@dataclass(frozen=True)
class Library:
    """A shared library a link names: where it is, its ``SONAME``, and the kind of each symbol it exports."""

    name: str  # as the command names it: ``torch_cpu`` for ``-ltorch_cpu``
    path: Path
    soname: str
    symbols: dict[str, str]


def searched_libraries(words: list[str]) -> list[tuple[str, Path]]:
    """The ``-l`` libraries of a link command found as shared libraries on its ``-L`` folders, in command order.

    As ld searches: each ``-L`` folder in order, ``lib<name>.so`` in the first that has it. Libraries found nowhere on
    the ``-L`` folders (the system's), or found there as a static archive first, are left out.
    """
    folders: list[Path] = []
    names: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word in ("-L", "-l") and position + 1 < len(words):
            if word == "-L":
                folders.append(Path(words[position + 1]))
            else:
                names.append(words[position + 1])
            position += 2
            continue
        if word.startswith("-L") and len(word) > 2:
            folders.append(Path(word[2:]))
        elif word.startswith("-l") and len(word) > 2 and not word.startswith("-l:"):
            names.append(word[2:])
        position += 1
    found = []
    for name in dict.fromkeys(names):
        for folder in folders:
            candidate = folder / f"lib{name}.so"
            if candidate.is_file():
                found.append((name, candidate))
                break
            if (folder / f"lib{name}.a").is_file():  # ld takes the static archive of this folder: no stub
                break
    return found


@functools.cache
def _read_library(name: str, path: Path, size: int, mtime_ns: int) -> Library | None:
    """The library's ``SONAME`` and exported symbols; None where it cannot have a stub (see the module docstring).

    Also None where ``readelf`` or ``nm`` cannot read it (a linker script in place of a library, for one).
    """
    try:
        dynamic = subprocess.run(
            ["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True, timeout=_TOOL_TIMEOUT
        ).stdout
        listed = subprocess.run(
            ["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True, timeout=_TOOL_TIMEOUT
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        logger.debug("%s is linked as it is: it cannot be read (%s).", path, error)
        return None
    sonames = [line.rsplit("[", 1)[-1].rstrip("]") for line in dynamic.splitlines() if "(SONAME)" in line]
    symbols: dict[str, str] = {}
    for line in listed.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        letter, symbol = parts[-2], parts[-1]
        if "@" in symbol:  # versioned: the reference would need the version too
            return None
        if letter in _KINDS:
            symbols[symbol] = _KINDS[letter]
    if len(sonames) != 1:
        return None
    return Library(name, path, sonames[0], symbols)


def read_library(name: str, path: Path) -> Library | None:
    """:func:`_read_library`, read once per process for each version of the file."""
    stat = path.stat()
    return _read_library(name, path.resolve(), stat.st_size, stat.st_mtime_ns)


def stub_source(symbols: dict[str, str]) -> str:
    """Assembly defining each symbol, as the kind says, one byte each."""
    lines = [".text"]
    for symbol, kind in sorted(symbols.items()):
        weak = kind.startswith("weak ")
        lines.append(f"{'.weak' if weak else '.globl'} {symbol}")
        lines.append(f".type {symbol}, @{'function' if kind.endswith('function') else 'object'}")
        lines.append(f".size {symbol}, 1")
        lines.append(f"{symbol}:")
        lines.append(".byte 0")
    return "\n".join(lines) + "\n"


def build_stub(library: Library, symbols: dict[str, str], compiler: str, folder: Path) -> None:
    """Write ``folder/lib<name>.so``: a stub of ``library`` (its ``SONAME``) defining ``symbols``."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"lib{library.name}.s"
    source.write_text(stub_source(symbols))
    command = [compiler, "-shared", "-nostdlib", "-x", "assembler", str(source), f"-Wl,-soname,{library.soname}"]
    subprocess.run(
        [*command, "-o", str(folder / f"lib{library.name}.so")],
        capture_output=True,
        text=True,
        check=True,
        timeout=_TOOL_TIMEOUT,
    )


def stubs_key(words: list[str], libraries: list[tuple[str, Path]], wanted: set[str]) -> str:
    """What a link's stubs depend on: the compiler, each library's file (path, size, time) in order, the references."""
    digest = hashlib.sha256(f"{words[0]}\0".encode())
    for name, path in libraries:
        stat = path.stat()
        digest.update(f"{name}\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    digest.update("\0".join(sorted(wanted)).encode())
    return digest.hexdigest()[:32]


def make_stubs(words: list[str], libraries: list[tuple[str, Path]], wanted: set[str], target: Path) -> None:
    """Build the stubs of a link into ``target`` (one folder per library) and list their names in :data:`READY`."""
    target.mkdir(parents=True)
    claimed: set[str] = set()
    stubbed: list[str] = []
    for name, path in libraries:  # in command order: a symbol resolves to the first library that defines it
        library = read_library(name, path)
        if library is None:  # linked as it is; whatever it defines is resolved there first, as before
            continue
        defined = {symbol: library.symbols[symbol] for symbol in wanted - claimed if symbol in library.symbols}
        claimed.update(defined)
        if len(library.symbols) >= STUB_MIN_SYMBOLS:
            build_stub(library, defined, words[0], target / name)
            stubbed.append(name)
    (target / READY).write_text("".join(f"{name}\n" for name in stubbed))


@dataclass(frozen=True)
class StubbedLink:
    """A link command with stubs in place of its large libraries, and the folder that holds those stubs.

    A link against them that fails is remembered there (``compiler.remember_failure``): later links run as written.
    """

    command: list[str]
    folder: Path


def stubbed_command(words: list[str], cwd: str, folder: Path) -> StubbedLink | None:
    """The link command with a ``-L`` folder of stubs first for each large library; None where none applies.

    The stubs of one set of libraries and references are built once and kept (``folder``/:data:`STUBS_FOLDER`/key):
    a later link of the same references reads no library. None too where a link against them failed before.
    """
    objects = [Path(cwd) / w for w in linked_objects(words)]
    libraries = searched_libraries(words)
    if not objects or not libraries:
        return None
    wanted = set(undefined_symbols(objects))
    target = folder / STUBS_FOLDER / stubs_key(words, libraries, wanted)
    if failed_before(target):
        return None
    if not (target / READY).is_file():
        building = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        shutil.rmtree(building, ignore_errors=True)
        try:
            make_stubs(words, libraries, wanted, building)
            try:
                os.replace(building, target)
            except OSError:  # another build put the same stubs there first
                if not (target / READY).is_file():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
    stubbed = (target / READY).read_text().split()
    if not stubbed:
        return None
    return StubbedLink([words[0], *(f"-L{target / name}" for name in stubbed), *words[1:]], target)


def link_with_stubs(words: list[str], cwd: str, run: Callable[[str, str], None], folder: Path) -> bool:
    """Run the link ``words`` against stubs of its large libraries; False where it must run as written.

    ``folder`` keeps the stubs (beside the wrapper's runtime objects). On False the command's output was not written
    by a stub link that succeeded (a failed one may have left it: the caller's run of the command replaces it).
    """
    try:
        link = stubbed_command(words, cwd, folder)
    except Exception as error:  # noqa: BLE001 - no stubs: the link reads the real libraries, as AOTInductor writes it
        logger.info("Linking against torch's libraries: no stubs (%s).", failure_reason(error))
        return False
    if link is None:
        return False
    try:
        run(shlex.join(link.command), cwd)
    except Exception as error:  # noqa: BLE001 - the link as written follows
        reason = failure_reason(error)
        logger.info("The link against stubs failed (%s); linking against torch's libraries.", reason)
        remember_failure(link.folder, reason)
        return False
    return True
