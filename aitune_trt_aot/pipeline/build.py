"""One build, top to bottom: what ``TorchTensorRTAotBackend._build`` runs, step after step.

Each step takes and returns typed values (``BuildPlan``, ``Capture``, ``Calibration``, ``CompiledModel``,
``CheckpointEntry``, ``Activation``, ``SelfCheckReport``); the steps AITune's build report lists are recorded through
``track``. What the machine must have comes from the ``toolkit``, so the same steps run on the CPU with a fake frontend
and format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aitune.torch.utils.module import move_module_to_device
from torch import nn

from aitune_trt_aot import hints
from aitune_trt_aot.activation import Activation, activate
from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compiled import CompiledModel, Coverage
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.pipeline.cache_reuse import store_build
from aitune_trt_aot.pipeline.capture import Capture, narrowed_capture, prepare_capture
from aitune_trt_aot.pipeline.compile import compile_model
from aitune_trt_aot.pipeline.early_kernels import kernels_meanwhile
from aitune_trt_aot.pipeline.job import Build, BuildJob, StepTracker, untracked
from aitune_trt_aot.pipeline.job import TorchTensorRTAotBuildStep as Step
from aitune_trt_aot.pipeline.kernels import keep_kernel_cache
from aitune_trt_aot.pipeline.quantize import quantize_capture
from aitune_trt_aot.pipeline.range_search import largest_building, largest_passing, narrow_graph_spec, raised_axes
from aitune_trt_aot.pipeline.save import built_entry, save_artifact
from aitune_trt_aot.pipeline.self_check import (
    Mismatch,
    RangeSearchChecks,
    check_against_eager,
    engines_of,
    refuse_mismatch,
)
from aitune_trt_aot.pipeline.shared_build import building, reuse_or_claim
from aitune_trt_aot.plan import (
    BuildPlan,
    make_plan,
    refuse_without_engines,
    refuse_without_quantized_layers,
    with_ranges,
)
from aitune_trt_aot.ranges import InputRange, describe_all
from aitune_trt_aot.settings import convert_settings
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.toolkit import GPU_TOOLKIT, Toolkit

logger = logging.getLogger(__name__)


def run_build(job: BuildJob, toolkit: Toolkit = GPU_TOOLKIT, track: StepTracker = untracked) -> Build:
    """Plan, capture, reuse a cached build or quantize and compile, save, load back, check, keep kernels, store.

    Raises the error that says why this model cannot be built here, or why what was built is refused.
    """
    # Requirements and plan: every refusal before any work.
    torch_tensorrt = toolkit.require_build()
    settings = convert_settings(job.config.compile_config)
    sample = job.samples[0]
    plan = make_plan(job.config, toolkit.stack(), job.graph_spec, sample, settings, toolkit.gpu(job.device))
    module = job.module.eval()
    move_module_to_device(module, job.device)
    capture = prepare_capture(plan, job, module, sample, torch_tensorrt)

    claim = None  # shared builds across processes: pipeline/shared_build.py
    if job.config.build_cache:
        reused, claim = reuse_or_claim(job, module, plan, capture.guard, toolkit, track)
        if reused is not None:
            narrow_graph_spec(job.graph_spec, reused.entry.shape_guard.ranges)
            return reused
    with building(claim):
        if plan.precision.quantized is not None:  # int8, fp8: a calibrated, quantized copy is what compiles
            capture = _quantize(plan, capture, job, module, track)
        outcome = _compile_and_check(plan, capture, job, module, settings, toolkit, track)
        if isinstance(outcome, Build):
            build = outcome
        else:  # the engines are right only below the top of the requested range: build again for the range they pass
            plan = with_ranges(plan, outcome)
            capture = narrowed_capture(capture, outcome)
            build = _compile_and_check(plan, capture, job, module, settings, toolkit, track, search=False)
        if claim is not None:
            store_build(claim.key, build.entry)
    narrow_graph_spec(job.graph_spec, build.entry.shape_guard.ranges)  # AITune checks and profiles up to its max
    return build


def _quantize(plan: BuildPlan, capture: Capture, job: BuildJob, module: nn.Module, track: StepTracker) -> Capture:
    """The quantize step, reported to AITune with its calibration (``pipeline/quantize.py``)."""
    with track(Step.QUANTIZE) as result:
        capture, calibration = quantize_capture(plan, capture, job, module)
        result["recipe"] = calibration.recipe
        result["calibration_samples"] = calibration.samples
        result["calibration_seconds"] = calibration.seconds
    return capture


def _compile_and_check(
    plan: BuildPlan,
    capture: Capture,
    job: BuildJob,
    module: nn.Module,
    settings: Any,
    toolkit: Toolkit,
    track: StepTracker,
    search: bool = True,
) -> Build | list[InputRange]:
    """Compile, save, load back, check against eager and keep the kernels; return the build.

    With ``search``, engines that fail only at the top of the requested range return instead the narrower ranges
    to build again for (``range_search``).
    """
    requested = capture.guard.ranges
    with track(Step.COMPILE) as result:
        compiled, plan, capture = _compile_within_limits(plan, capture, job, settings)
        result["precision"] = plan.precision.describe()
        result["coverage"] = compiled.coverage.describe()
        result["capture_seconds"] = compiled.capture_seconds
        if compiled.ranges is not None and compiled.ranges != plan.ranges:  # the frontend built a narrower range
            plan = with_ranges(plan, compiled.ranges)
            capture = narrowed_capture(capture, compiled.ranges)
        if capture.guard.ranges != requested:
            result["built_ranges"] = describe_all(capture.guard.ranges)
    coverage = compiled.coverage
    refuse_without_engines(plan, coverage, settings)
    refuse_without_quantized_layers(plan, coverage)

    compiled.constants = dict(capture.guard.constants)
    compiled.kernel_specialization = job.config.kernel_specialization
    with track(Step.ARTIFACT_SAVE) as result:
        with kernels_meanwhile(compiled, plan, capture.guard, job) as early:  # pipeline/early_kernels.py
            artifact = save_artifact(compiled, plan, job, early.native_compile_started)
        result["compiled_model_size_bytes"] = artifact.path.stat().st_size
        if early.found is not None:
            result["early_kernels"] = early.found.report()
        elif early.problem is not None:
            result["early_kernels_problem"] = early.problem
    del compiled  # the in-memory engines: what runs from here on is what was saved
    entry = built_entry(job, plan, artifact, capture.guard, coverage)
    kernels = early.found

    with track(Step.ARTIFACT_LOAD):
        activation = _load_back(entry, plan, coverage, job, toolkit, None if kernels is None else kernels.cache)
    with track(Step.SELF_CHECK) as result:
        report = check_against_eager(
            activation,
            capture.guard,
            plan,
            module,
            job.samples,
            job.device,
            job.config.check_shapes,
            known_first_calls=None if kernels is None else kernels.first_calls,
        )
        result["first_call_seconds"] = report.first_call_seconds
        result["checked_shapes"] = report.checked_shapes
        searched: list[str] = []
        if search and report.mismatch is not None and _at_range_top(report.mismatch, capture.guard):
            checks = _range_search_checks(entry, capture.guard, plan, module, job, toolkit)
            narrower = largest_passing(
                list(capture.guard.ranges), raised_axes(capture.guard, job.samples), checks.passes
            )
            result["range_search"] = {"top": report.mismatch.problem, "tried": list(checks.tried)}
            if narrower is not None:
                result["built_ranges"] = describe_all(narrower)
                return narrower
            searched = checks.tried
        refuse_mismatch(report.mismatch, plan, coverage, searched)
        entry.warm_calls = report.warm_calls
    with track(Step.KERNEL_CACHE_SAVE):
        keep_kernel_cache(entry, activation.engine_setup, job.cache_dir)
    logger.info(
        "Built %s for %s; %s; into %s.", plan.describe(), describe_all(plan.ranges), coverage.describe(), artifact
    )
    return Build(entry=entry, activation=activation, from_cache=False)


def _compile_within_limits(
    plan: BuildPlan, capture: Capture, job: BuildJob, settings: Any
) -> tuple[CompiledModel, BuildPlan, Capture]:
    """Compile; where that fails for a range raised above the recorded calls, for the largest range that builds.

    AITune raises batch ranges to what eager PyTorch fits in the GPU's memory, which TensorRT may not build engines
    for (``largest_building``). A failure that the largest recorded sizes share is raised as it is.
    """
    try:
        compiled, built_plan = compile_model(plan, capture.request, job.config, settings)
        return compiled, built_plan, capture
    except BuildError as error:
        failure = error
    built: list[tuple[CompiledModel, BuildPlan, Capture]] = []

    def builds(candidate: list[InputRange]) -> bool:
        narrowed = narrowed_capture(capture, candidate)
        try:
            compiled, built_plan = compile_model(with_ranges(plan, candidate), narrowed.request, job.config, settings)
        except BuildError as error:
            logger.info("No engines for %s either: %s", describe_all(candidate), error)
            return False
        built[:] = [(compiled, built_plan, narrowed)]  # only the last success is kept: engines hold memory
        return True

    logger.info(
        "Torch-TensorRT could not build for %s (%s); trying smaller ranges.", describe_all(plan.ranges), failure
    )
    if largest_building(list(capture.guard.ranges), raised_axes(capture.guard, job.samples), builds) is None:
        raise failure
    return built[-1]


def _at_range_top(mismatch: Mismatch, guard: ShapeGuard) -> bool:
    """Whether ``mismatch`` is the call at the top of ``guard``'s ranges (not a recorded call, not the bottom)."""
    top = tuple(spec.max_shape for spec in guard.ranges)
    return not mismatch.recorded and mismatch.shapes == top


def _range_search_checks(
    entry: CheckpointEntry, guard: ShapeGuard, plan: BuildPlan, module: nn.Module, job: BuildJob, toolkit: Toolkit
) -> RangeSearchChecks:
    """The range search's test: each candidate's top on the saved artifact's engines, loaded afresh after a failure."""

    def reload() -> Callable[..., Any]:
        fresh = activate(entry, job.device, toolkit, checksum_verified=True)  # built_entry hashed it at save
        return engines_of(fresh, check_shapes=False)

    return RangeSearchChecks(reload, guard, module, job.samples[0], job.device, plan.tolerance)


def _load_back(
    entry: CheckpointEntry,
    plan: BuildPlan,
    coverage: Coverage,
    job: BuildJob,
    toolkit: Toolkit,
    live_kernel_cache: Any = None,
) -> Activation:
    """Load the artifact just saved (not the in-memory module), so what tuning checks is what production loads.

    ``live_kernel_cache``: the kernels compiled during the save (``early_kernels``), for the loaded engines to share.
    """
    try:
        # built_entry hashed the file just now
        return activate(entry, job.device, toolkit, checksum_verified=True, live_kernel_cache=live_kernel_cache)
    except Exception as error:
        raise BuildError(
            f"The {plan.artifact_format.name!r} artifact written by {plan.describe()} cannot be loaded back "
            f"({type(error).__name__}: {error}). {hints.for_unloadable_artifact(coverage)}"
        ) from error
