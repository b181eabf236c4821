"""Compile AOTInductor's wrapper in two parts: its runtime once per machine, the model's own code per model.

AOTInductor writes each package's wrapper (``<hash>.wrapper.cpp``) as the device includes and its runtime interface
(``codegen/aoti_runtime/interface.cpp``, the same text for every model), then the model's code, and compiles it whole
at every first build of a model: 5.7-5.9 s on the GPU host, most of a small model's ``.pt2`` tune. The interface
functions and the model's class both instantiate AOTInductor's header-only runtime (``AOTInductorModelBase``, whose
one instantiation, ``AOTInductorModelBase<AOTInductorModel>``, is the same in every model); that instantiation and
its code generation are most of the compile, so compiling the two halves apart saved only 20-30 %.

:func:`split_wrapper` instead makes two sources: the **runtime** (the includes and the interface, with that base class
instantiated explicitly: identical for every model of one torch build, device and command) and the **model** (the
same includes but the container's and the interface's, the model's code, the instantiation declared ``extern``;
compiled against lighter headers where ``pt2.lean_headers`` can prepare them). :func:`compile_in_two` compiles the
runtime into a file named by the digest of its source and command in Inductor's cache folder, once, and reuses it for
every later model; it compiles the model's half and joins the two (``-r``, a relocatable link) into the object the
wrapper compile was asked for, so AOTInductor's own link reads it as before. On the CPU machine: the whole wrapper
6.2 s, the runtime 5.2 s (once), the model's half 1.5 s (docs/benchmark.md).

Where the wrapper does not have the expected shape, or a step fails, the wrapper is compiled whole, as AOTInductor
would; the package's self-check loads and compares every package either way.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.pt2.compiler import (
    compiler_version,
    failure_reason,
    included_files,
    undefined_symbols,
    with_paths,
)
from aitune_trt_aot.pt2.lean_headers import LEFT_OUT, lean_headers

logger = logging.getLogger(__name__)

WRAPPER_SUFFIX = ".wrapper.cpp"
# interface.cpp ends with this line; the model's code follows it.
INTERFACE_END = '} // extern "C"'
# Present in the head of every AOTInductor wrapper: what tells the head is AOTInductor's interface.
INTERFACE_INCLUDE = "#include <torch/csrc/inductor/aoti_runtime/model_container.h>"
MODEL_INCLUDE = "#include <torch/csrc/inductor/aoti_runtime/model.h>"
# The container's class (inline members over the model's) and the C interface: the runtime's, not the model's.
RUNTIME_ONLY_INCLUDES = (INTERFACE_INCLUDE, "#include <torch/csrc/inductor/aoti_runtime/interface.h>")
RUNTIME_FOLDER = "aitune_trt_aot-wrapper-runtime"
MODEL_SYMBOL = "AOTInductorModel"  # in the mangled names of the model, its base and its container
_BASE = "AOTInductorModelBase<AOTInductorModel>"
INSTANTIATE = f"namespace torch::aot_inductor {{ template class {_BASE}; }}\n"
DECLARE_EXTERN = f"namespace torch::aot_inductor {{ extern template class {_BASE}; }}\n"

Run = Callable[[str, str], None]  # Inductor's command runner: (command line, working folder)


@dataclass(frozen=True)
class WrapperParts:
    """The two sources one wrapper is compiled from."""

    runtime: str  # the includes and AOTInductor's interface, the model base class instantiated: the same per model
    model: str  # the includes but the runtime's and the model's code, the base class declared extern


def split_wrapper(code: str) -> WrapperParts | None:
    """The runtime and model sources of a wrapper's code; None when the code is not laid out as expected."""
    lines = code.split("\n")
    ends = [i for i, line in enumerate(lines) if line.rstrip() == INTERFACE_END]
    if len(ends) != 1:
        return None
    head, tail = lines[: ends[0] + 1], lines[ends[0] + 1 :]
    includes = [line for line in head if line.startswith("#include")]
    if INTERFACE_INCLUDE not in includes or not any(line.strip() for line in tail):
        return None
    runtime = "\n".join(head) + "\n" + INSTANTIATE
    model_includes = [line for line in includes if line not in RUNTIME_ONLY_INCLUDES]
    model = "\n".join([*model_includes, MODEL_INCLUDE]) + "\n" + DECLARE_EXTERN + "\n".join(tail)
    return WrapperParts(runtime=runtime, model=model)


def runtime_digest(runtime: str, words: list[str], cwd: str) -> str:
    """SHA-256 of what the runtime object depends on: its source, the command (paths aside), torch, the compiler.

    The compiler's version and the ``-include``'d files (the precompiled header's source) are read as
    ``object_reuse.inputs_digest`` reads them; ``OSError`` if a file cannot be read.
    """
    digest = hashlib.sha256()
    digest.update(runtime.encode())
    digest.update(shlex.join(with_paths(words, "SOURCE", "OUTPUT")).encode())
    digest.update(torch.__version__.encode())
    digest.update(compiler_version(words[0]))
    for path in included_files(words, cwd):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def runtime_object(runtime: str, words: list[str], cwd: str, folder: Path) -> Path:
    """Where the runtime's object is kept in ``folder``: a file named by :func:`runtime_digest`."""
    return folder / f"{runtime_digest(runtime, words, cwd)}.o"


def compile_runtime(runtime: str, words: list[str], cwd: str, run: Run, target: Path) -> None:
    """Compile the runtime's source into ``target``; the source stays beside the object only once it compiled."""
    source = target.with_suffix(".cpp")
    write_atomically(source, lambda tmp: tmp.write_text(runtime))
    try:
        write_atomically(target, lambda tmp: run(shlex.join(with_paths(words, str(source), str(tmp))), cwd))
    except BaseException:
        source.unlink(missing_ok=True)
        raise


def undefined_model_symbols(obj: Path) -> list[str]:
    """The symbols ``obj`` uses but does not define (``nm -u``) of AOTInductor's model classes and of ``LEFT_OUT``.

    A joined wrapper defines all of them, as the whole wrapper does: one left undefined would pass the link of the
    shared library and fail only when the package is loaded or called. ``LEFT_OUT`` is the function whose body the
    model half's lighter headers leave out (``pt2.lean_headers``). ``OSError`` or ``CalledProcessError`` when
    ``nm`` cannot read the object.
    """
    return [symbol for symbol in undefined_symbols([obj]) if MODEL_SYMBOL in symbol or LEFT_OUT in symbol]


def compile_in_two(words: list[str], cwd: str, run: Run, folder: Path) -> bool:
    """Compile the wrapper of ``words`` (a compile-only command) as runtime plus model; False if it must go whole.

    ``folder`` keeps the runtime objects and the lighter headers. The first wrapper on a machine compiles the runtime,
    the lighter headers and its model's half (with AOTInductor's headers) at the same time. On False the command's
    output was not written.
    """
    sources = [w for w in words if w.endswith(WRAPPER_SUFFIX)]
    if len(sources) != 1 or "-c" not in words or "-o" not in words:
        return False
    source = Path(cwd) / sources[0]
    target = Path(cwd) / words[words.index("-o") + 1]
    try:
        parts = split_wrapper(source.read_text().split("\n// Compile cmd\n", 1)[0])
        if parts is None:
            logger.debug("%s is not laid out as the split expects; compiling it whole.", source.name)
            return False
        runtime = runtime_object(parts.runtime, words, cwd, folder)
        lean = lean_headers(words, cwd, folder)
        with ThreadPoolExecutor(max_workers=2) as pool:
            if runtime.is_file():
                logger.info("Reusing the AOTInductor runtime object %s.", runtime.name)
                ready: Future[None] | None = None
            else:
                ready = pool.submit(compile_runtime, parts.runtime, words, cwd, run, runtime)
            model_words = words
            if lean is not None and lean.ready:
                model_words = lean.command
            elif lean is not None:  # built for the next models; this one's half does not wait
                pool.submit(lean.build, cwd, run)
            _compile_model(parts.model, model_words, cwd, run, source, target, runtime, ready)
    except Exception as error:  # noqa: BLE001 - any failure of the split means: compile the wrapper whole
        logger.info("Compiling %s whole: its split compile failed (%s).", source.name, failure_reason(error))
        return False
    return True


def _compile_model(
    model: str,
    words: list[str],
    cwd: str,
    run: Run,
    source: Path,
    target: Path,
    runtime: Path,
    ready: Future[None] | None,
) -> None:
    """Compile the model's half beside the wrapper, then join it with the runtime into ``target`` (atomically).

    ``words`` is the model half's command (``pt2.lean_headers``' when its lighter headers are ready). ``ready`` is
    the runtime's compile when it runs meanwhile: the join waits for it (and raises what it raised).
    """
    model_source = source.with_name(source.name.removesuffix(".cpp") + ".model.cpp")
    model_object = target.with_name(target.name.removesuffix(".o") + ".model.o")
    try:
        write_atomically(model_source, lambda tmp: tmp.write_text(model))
        run(shlex.join(with_paths(words, str(model_source), str(model_object))), cwd)
        if ready is not None:
            ready.result()
        join = [words[0], "-r", "-nostdlib", str(runtime), str(model_object), "-o"]

        def joined(tmp: Path) -> None:
            run(shlex.join([*join, str(tmp)]), cwd)
            missing = undefined_model_symbols(tmp)
            if missing:
                raise RuntimeError(f"the joined wrapper lacks {len(missing)} model symbols, e.g. {missing[0]}")

        write_atomically(target, joined)
    finally:  # intermediates: AOTInductor too deletes its objects once linked
        model_source.unlink(missing_ok=True)
        model_object.unlink(missing_ok=True)
