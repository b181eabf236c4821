"""Lighter headers for the model's half of a split wrapper: AOTInductor's, less one function's regular expression.

Most of the model's half's compile is not the model: an empty source compiled with the same command and Inductor's
precompiled header takes most of its time, in templates that GCC instantiates at the end of every translation unit
(docs/benchmark.md, "Issue 28 on the CPU machine"). One inline function of AOTInductor's ``model_base.h``,
``parse_device_str``, matches the device string with ``std::regex``: about 2,500 template instantiations in every
file that includes the header, whether it calls the function or not. The model's half never calls it: its only
caller is the constructor of ``AOTInductorModelBase<AOTInductorModel>``, which the model's half declares ``extern``
and the runtime half defines (``pt2.wrapper_split``).

:class:`LeanHeaders` is a folder beside the runtime objects, built once per machine, holding a copy of ``model_base.h``
with that function's body left out (its declaration stays), and a precompiled header of the header Inductor precompiles,
built against that copy; its :attr:`~LeanHeaders.command` is the model half's command with the copy found first and that
precompiled header in place of Inductor's. The runtime half keeps AOTInductor's headers and defines the function, and
the joined object is checked not to need it (:data:`LEFT_OUT`). Where the header does not have the expected text, or the
precompiled header does not compile, the model's half compiles with AOTInductor's headers as before.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.pt2.compiler import (
    compiler_version,
    failed_before,
    failure_reason,
    remember_failure,
    with_paths,
)

logger = logging.getLogger(__name__)

MODEL_BASE = Path("torch/csrc/inductor/aoti_runtime/model_base.h")
LEFT_OUT = "parse_device_str"  # the function whose body the copy leaves out
_DEFINITION = re.compile(r"inline void parse_device_str\([^)]*\)\s*\{")
_REGEX_INCLUDE = "#include <regex>\n"
LEAN_PREFIX = "lean-"  # the folders' names: this, then a digest (lean_folder_name)
PRECOMPILED = "precompiled.h"

Run = Callable[[str, str], None]  # Inductor's command runner: (command line, working folder)


def without_regex(text: str) -> str | None:
    """``model_base.h``'s text with :data:`LEFT_OUT`'s body replaced by ``;`` and ``<regex>`` no longer included.

    None when the text is not as expected: not exactly one such definition, no ``<regex>`` include, or a regular
    expression used anywhere else.
    """
    matches = list(_DEFINITION.finditer(text))
    if len(matches) != 1 or text.count(_REGEX_INCLUDE) != 1:
        return None
    opening = matches[0].end() - 1
    depth = 0
    for end in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    else:
        return None
    lean = text[:opening].rstrip() + ";" + text[end + 1 :]
    lean = lean.replace(_REGEX_INCLUDE, "#include <functional>\n")
    return None if "regex" in lean else lean


def include_folders(words: list[str]) -> list[Path]:
    """The folders a command names with ``-I`` (``-Ifolder`` and ``-I folder``), in order."""
    folders = []
    for i, word in enumerate(words):
        if word == "-I" and i + 1 < len(words):
            folders.append(Path(words[i + 1]))
        elif word.startswith("-I") and len(word) > 2:
            folders.append(Path(word[2:]))
    return folders


def lean_folder_name(lean_header: str, precompiled_source: str, words: list[str]) -> str:
    """The folder's name: a digest of the copy, the precompiled header's source, the command, torch and compiler."""
    digest = hashlib.sha256()
    for part in (lean_header, precompiled_source, shlex.join(with_paths(words, "SOURCE", "OUTPUT"))):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(torch.__version__.encode())
    digest.update(compiler_version(words[0]))
    return LEAN_PREFIX + digest.hexdigest()[:32]


def precompile_command(words: list[str], header: Path, output: Path) -> list[str]:
    """The model half's command ``words`` turned into one that precompiles ``header`` into ``output``.

    The same options (GCC uses a precompiled header only for a compile of the same options), no ``-c``, no
    ``-include``, the header in place of the source.
    """
    position = words.index("-include")
    kept = [w for i, w in enumerate(words) if w != "-c" and i not in (position, position + 1)]
    source = with_paths(kept, "\0", str(output))
    at = source.index("\0")
    return [*source[:at], "-x", "c++-header", str(header), *source[at + 1 :]]


@dataclass(frozen=True)
class LeanHeaders:
    """The lighter headers for one model-half command: their folder, the command that uses them, how to build them."""

    folder: Path  # the copy of the header (under torch/...), the precompiled header's source and its .gch
    lean_header: str  # the copy's text
    precompiled_source: str  # the text of the header Inductor precompiles, precompiled here against the copy
    shadowed: list[str]  # the model half's command with the folder searched first and Inductor's -include still in

    @property
    def header(self) -> Path:
        """The precompiled header's source in :attr:`folder` (its ``.gch`` beside it)."""
        return self.folder / PRECOMPILED

    @property
    def compiled_header(self) -> Path:
        """The precompiled header itself, beside :attr:`header` (GCC looks for it there)."""
        return self.header.with_name(PRECOMPILED + ".gch")

    @property
    def ready(self) -> bool:
        """Whether the precompiled header was built (on this machine, by any build)."""
        return self.compiled_header.is_file()

    @property
    def command(self) -> list[str]:
        """The model half's compile command with the copy found first and this precompiled header included."""
        words = list(self.shadowed)
        words[words.index("-include") + 1] = str(self.header)
        return words

    def build(self, cwd: str, run: Run) -> None:
        """Write the copy and the header, then precompile it (atomically); a failure is logged and remembered."""
        logger.info("Preparing the lighter headers for AOTInductor's model code in %s.", self.folder.name)
        try:
            copy = self.folder / MODEL_BASE
            copy.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(copy, lambda tmp: tmp.write_text(self.lean_header))
            write_atomically(self.header, lambda tmp: tmp.write_text(self.precompiled_source))
            write_atomically(
                self.compiled_header,
                lambda tmp: run(shlex.join(precompile_command(self.shadowed, self.header, tmp)), cwd),
            )
        except Exception as error:  # noqa: BLE001 - any failure: keep AOTInductor's headers, here and later
            reason = failure_reason(error)
            logger.info("The lighter headers did not precompile (%s); keeping AOTInductor's.", reason)
            remember_failure(self.folder, reason)  # later builds do not try again


def lean_headers(words: list[str], cwd: str, runtime_folder: Path) -> LeanHeaders | None:
    """The lighter headers for the model half's compile command ``words``; None where they do not apply.

    None when the command does not include one precompiled header, the installed header is not as expected, a file
    cannot be read, or building them failed before on this machine.
    """
    if words.count("-include") != 1 or "-o" not in words:
        return None
    try:
        originals = [d / MODEL_BASE for d in include_folders(words) if (d / MODEL_BASE).is_file()]
        if not originals:
            return None
        lean_header = without_regex(originals[0].read_text())
        if lean_header is None:
            logger.debug("%s is not as expected; the model's half keeps AOTInductor's headers.", originals[0])
            return None
        precompiled_source = (Path(cwd) / words[words.index("-include") + 1]).read_text()
    except OSError as error:
        logger.debug("The lighter headers are not available (%s).", error)
        return None
    folder = runtime_folder / lean_folder_name(lean_header, precompiled_source, words)
    if failed_before(folder):
        return None
    shadowed = [words[0], f"-I{folder}", *words[1:]]  # the copy is found before AOTInductor's header
    return LeanHeaders(folder, lean_header, precompiled_source, shadowed)
