"""Activation: make a saved artifact what ``infer`` runs, after a build and after ``ait.load``.

:func:`activate` resolves the device (one this machine has: ``placement``), checks the artifact (present, intact,
built for this machine), then asks the toolkit for what running needs (CUDA), then :func:`load_runner` loads it with
that device current, so that its engines land there: the format reads the file, its engines get their runtime
settings (``engine_runtime``), and its calls go through a CUDA-graph runner where the config uses graphs, and
through ``placement.PinnedRunner`` on machines with several GPUs. Every call then passes :func:`call_engines`: the
shape guard, then the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from aitune_trt_aot import engine_runtime, placement
from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compat import incompatibility
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from aitune_trt_aot.engine_errors import CheckedEngines
from aitune_trt_aot.errors import ArtifactError
from aitune_trt_aot.files import file_digest
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.plan import uses_cuda_graphs, uses_runtime_settings
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.stack import Stack
from aitune_trt_aot.toolkit import GPU_TOOLKIT, Toolkit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activation:
    """What ``infer`` runs once an artifact is activated.

    Attributes:
        runner: The loaded artifact, inside a CUDA-graph runner where the config uses graphs.
        guard: The input ranges and built-in values calls are checked against (None: unknown, as in checkpoints of
            AITune's built-in backend).
        engine_setup: The runtime settings the engines got (None where none could be set).
        device: The device the artifact was loaded on and runs on.

    """

    runner: Callable[..., Any]
    guard: ShapeGuard | None
    engine_setup: engine_runtime.EngineSetup | None
    device: torch.device


def call_engines(
    runner: Callable[..., Any], guard: ShapeGuard | None, check_shapes: bool, args: tuple, kwargs: dict[str, Any]
) -> Any:
    """Check the call against the built ranges and drop the built-in values (``guard``), then run the engines."""
    if guard is not None:
        args, kwargs = guard.prepare(args, kwargs, check_shapes)
    with torch.no_grad():
        return runner(*args, **kwargs)


def check_artifact(entry: CheckpointEntry, device: torch.device, checksum_verified: bool = False) -> None:
    """Refuse an artifact that is missing, damaged, or built for another GPU or stack, before anything is loaded.

    ``checksum_verified``: the caller hashed these bytes moments ago (a build, a cache hit), so reading the file
    again to hash it is skipped (0.1-0.2 s for ResNet-50). Loads from a checkpoint always hash.
    """
    path = entry.artifact.path
    if not path.is_file():
        raise ArtifactError(
            f"The compiled artifact {path} is missing: the checkpoint or cache folder is incomplete. Re-run "
            "ait.tune, or load the .ait checkpoint it was saved in."
        )
    if not checksum_verified and entry.checksum is not None and file_digest(path) != entry.checksum:
        raise ArtifactError(
            f"The compiled artifact {path} is damaged: its bytes do not match the checksum recorded when it was "
            "saved. Restore the .ait checkpoint from a good copy, or re-run ait.tune."
        )
    problem = incompatibility(entry.built_for, device)
    if problem is not None:
        raise ArtifactError(f"Cannot run {path}: {problem}")


def activate(
    entry: CheckpointEntry,
    device: torch.device | None,
    toolkit: Toolkit = GPU_TOOLKIT,
    checksum_verified: bool = False,
    live_kernel_cache: Any = None,
) -> Activation:
    """Check the artifact of ``entry``, check the machine can run it, and load it on ``device`` (default: the entry's).

    ``checksum_verified`` as for :func:`check_artifact`; ``live_kernel_cache`` as for :func:`load_runner`.
    """
    device = placement.resolve_device(device or entry.device)  # refuses a device this machine does not have
    check_artifact(entry, device, checksum_verified)
    toolkit.require_run()
    recorded = None if entry.device is None else torch.device(entry.device)
    if recorded is not None and recorded.index is not None and recorded != device:
        logger.info("Loading %s, recorded for %s, on %s.", entry.artifact.path.name, recorded, device)
    return load_runner(entry, device, toolkit.stack(), live_kernel_cache)


def load_runner(
    entry: CheckpointEntry, device: torch.device, stack: Stack, live_kernel_cache: Any = None
) -> Activation:
    """The runner ``infer`` calls, from the checked artifact: format load, engine runtime settings, CUDA graphs.

    The one place a loaded artifact becomes a runner, after a build and after ``ait.load`` alike: wrap the runner
    here to change what every call runs. ``stack`` decides whether the engines take runtime settings.
    ``live_kernel_cache``: a kernel cache this process already filled for these engines (``pipeline.early_kernels``),
    shared instead of the entry's kernel cache file.
    """
    config = entry.config
    artifact_format = FORMATS[entry.artifact_format]
    name = f"{entry.artifact.path.name} ({entry.artifact_format})"
    with placement.current_device(device):  # Torch-TensorRT deserialises engines on the current device (placement)
        runner = artifact_format.load(entry.artifact.path, device)
    if artifact_format.runtime_settings and device.type == "cuda":  # its engines can be reached: check their device
        placement.refuse_engines_elsewhere(engine_runtime.engine_devices(runner), device, name)
    captured = uses_cuda_graphs(config, entry.artifact_format)
    setup = None
    if uses_runtime_settings(config, entry.artifact_format, stack):
        setup = _configure_engines(runner, entry, captured, live_kernel_cache)
    # Engine calls TensorRT fails raise; graph replays run no TensorRT code and are not checked.
    runner = CheckedEngines(runner, name)
    if captured:
        runner = CudaGraphRunner(runner, device, fall_back=config.cuda_graphs == "auto")
    if placement.needs_pinning(device):
        runner = placement.PinnedRunner(runner, device, name)
    return Activation(runner=runner, guard=entry.shape_guard, engine_setup=setup, device=device)


def _configure_engines(
    runner: Any, entry: CheckpointEntry, captured: bool, live_kernel_cache: Any = None
) -> engine_runtime.EngineSetup | None:
    """Kernel strategy and kernel cache for the loaded engines; where that fails they keep TensorRT's defaults.

    ``captured``: the engines will run inside CUDA graphs (their kernels must not change after capture). A kernel
    cache that did not load is taken out of ``entry``, so that a later save does not carry it.
    """
    kernels = None if entry.kernel_cache is None else entry.kernel_cache.path
    strategy = engine_runtime.kernel_strategy(entry.config.kernel_specialization, captured)
    try:
        setup = engine_runtime.apply(runner, strategy, kernels, entry.kernel_cache_checksum, live_kernel_cache)
    except Exception as error:  # a Torch-TensorRT release without this API: slower first calls, same results
        logger.warning(
            "Could not set the engines' runtime settings (%s: %s); they run with TensorRT-RTX's defaults.",
            type(error).__name__,
            error,
        )
        return None
    if kernels is not None and not setup.loaded_bytes:
        # Missing or damaged (engine_runtime warned): a later save must not carry it, or copy a missing file.
        entry.kernel_cache, entry.kernel_cache_checksum = None, None
    return setup
