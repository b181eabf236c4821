"""``aot_inductor``: one ``.pt2`` AOTInductor package: TensorRT engines plus native code for the rest of the graph.

Runs without AITune and without importing ``torch_tensorrt`` (see ``aitune_trt_aot.pt2.installed``), in
Python and in C++ (``torch::inductor::AOTIModelPackageLoader``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch._inductor.runtime.cache_dir_utils import cache_dir
from torch.export import ExportedProgram

from aitune_trt_aot.compat import build_environment
from aitune_trt_aot.compiled import CompiledModel
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.pt2.object_reuse import reused_objects
from aitune_trt_aot.pt2.package import (
    BUILT_FOR_METADATA_KEY,
    CONSTANTS_METADATA_KEY,
    COVERAGE_METADATA_KEY,
    INPUTS_METADATA_KEY,
    KERNELS_METADATA_KEY,
)
from aitune_trt_aot.pt2.runtime import load_pt2
from aitune_trt_aot.ranges import program_ranges

logger = logging.getLogger(__name__)

# Inductor settings for the package compile only (passed as its inductor_configs, so nothing changes for the rest of
# the process). compile_threads=1: no compile-worker pool. AOTInductor wakes Inductor's pool of up to 32 worker
# processes (each importing torch, with a health thread polling every 2 s) whenever the example inputs are on the GPU,
# although a graph of TensorRT engines has few or no Triton kernels for it; its workers compete with the C++ compiles
# for the CPU. compile_wrapper_opt_level="O0": the generated wrapper only passes tensor handles between the engines and
# any PyTorch-run operations (Inductor's default is O1; its kernels keep O3). pattern_matcher=False: the pattern
# passes have nothing to rewrite in a graph of engines, and their set-up traces every pattern once per process
# (0.2-0.6 s of a package compile; the joint-graph pass's set-up also needs without_joint_pattern_setup).
# docs/benchmark.md, "Tune time".
PACKAGE_COMPILE_CONFIGS: dict[str, Any] = {
    "compile_threads": 1,
    "aot_inductor.compile_wrapper_opt_level": "O0",
    "pattern_matcher": False,
}


@contextmanager
def without_joint_pattern_setup() -> Iterator[None]:
    """While active, Inductor's joint-graph pass skips the set-up of the pattern passes ``pattern_matcher=False`` skips.

    Its post-grad pass checks the flag before its set-up; its joint-graph pass (``joint_graph.lazy_init``, once per
    process) does not, and traces every attention and padding pattern it may never apply: 0.6 s of the first package
    compile in a process on the CPU machine (docs/benchmark.md). A later compile with the patterns on (the set-up is
    cached only once it ran) sets them up as before. Not thread-safe across other compiles of the process: hold
    ``object_reuse``'s lock, as the package compile does; a ``torch.compile`` in another thread meanwhile would run
    without those patterns (slower code, same results).
    """
    from torch._inductor.fx_passes import joint_graph

    original = getattr(joint_graph, "lazy_init", None)
    if original is None:  # another torch release: nothing to skip
        yield
        return
    joint_graph.lazy_init = _no_pattern_setup
    try:
        yield
    finally:
        joint_graph.lazy_init = original


def _no_pattern_setup(*args: Any, **kwargs: Any) -> None:
    return None


@contextmanager
def _quiet_fake_engine_warnings() -> Iterator[None]:
    # Tracing through Torch-TensorRT engines logs a multi-line warning per engine method that the fake engine
    # lacks (methods export never calls); hundreds of lines that say nothing about the package.
    registry_logger = logging.getLogger("torch._library.fake_class_registry")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        registry_logger.setLevel(level)


def _package_configs(program: ExportedProgram, compiled: CompiledModel) -> dict[str, Any]:
    ranges = program_ranges(program)
    metadata = {
        INPUTS_METADATA_KEY: json.dumps([r.to_json() for r in ranges]),
        CONSTANTS_METADATA_KEY: json.dumps(compiled.constants, default=repr),
        COVERAGE_METADATA_KEY: json.dumps(compiled.coverage.to_dict()),
        BUILT_FOR_METADATA_KEY: json.dumps(build_environment(), default=str),
        KERNELS_METADATA_KEY: compiled.kernel_specialization,
    }
    for position, tensor_range in enumerate(ranges):
        lows, highs = tensor_range.size_bounds()
        metadata[f"aitune_trt_aot.input_{position}.min"] = lows
        metadata[f"aitune_trt_aot.input_{position}.max"] = highs
    return {**PACKAGE_COMPILE_CONFIGS, "aot_inductor.metadata": metadata}


def packaging_lock() -> FileLock:
    """A lock held while a package is compiled, one per Inductor cache folder (so per user and machine).

    AOTInductor writes a package's generated code, metadata and engines into a cache folder named by the hash of
    that code, then zips the folder. Models whose graphs give the same code (one-engine models of the same input
    and output shapes) share the folder; two such builds at the same time in different processes (parallel tuning
    jobs, parallel tests) can zip each other's half-written files. Seen on the GPU host: "wrapper_metadata.json is
    not a JSON object" in a package just written. Holding this lock makes them take turns.
    """
    folder = Path(cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / "aitune_trt_aot-package.lock"))


class AotInductorFormat(ArtifactFormat):
    """A ``.pt2`` package compiled by AOTInductor from the engines' graph (C++-runtime engines)."""

    name = "aot_inductor"
    suffix = ".pt2"
    quantized = True  # the 8-bit layers are inside the engines the package embeds
    runtime_settings = True  # the loaded package hands out its engine objects (pt2.engines)
    slow_save = True  # its C++ compile: 1.4-6 s on an H100 host

    def save(
        self,
        compiled: CompiledModel,
        path: Path,
        *,
        pickle_protocol: int,
        on_native_compile: Callable[[], None] | None = None,
    ) -> None:
        """Export the compiled graph with its dynamic shapes and compile it into a package at ``path``.

        C++ objects compiled before from the same code, and a library linked before from the same objects, are reused
        (``pt2.object_reuse``): a rebuild of the same architecture skips the wrapper's compile and the link.
        ``on_native_compile`` is called before the first C++ command, once Inductor's code generation is over.
        """
        args, kwargs = compiled.sample
        with _quiet_fake_engine_warnings():
            program = torch.export.export(
                compiled.module,
                tuple(args),
                kwargs or None,
                dynamic_shapes=compiled.positional_dynamic_shapes(),
                strict=False,
            )
            configs = _package_configs(program, compiled)
            logger.info("Compiling the AOTInductor package %s", path)
            with packaging_lock(), reused_objects(before_commands=on_native_compile), without_joint_pattern_setup():
                torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Load the package through the AOTInductor runtime; graphs and engine settings are the activation's."""
        return load_pt2(path, device=device, cuda_graphs=False, runtime_settings=False)
