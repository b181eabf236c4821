"""Build-cache steps: look a build up, reuse it as a transaction, store a checked one (``aitune_trt_aot.build_cache``).

Reuse is all or nothing: the cached artifact is copied in, loaded and compared with eager PyTorch on one recorded
call; anything that fails drops the entry, removes the copies, and the build goes on as if it had missed.
"""

from __future__ import annotations

import logging

from aitune.torch.checkpoint.artifact import ArtifactPath
from torch import nn

from aitune_trt_aot import build_cache, holders
from aitune_trt_aot.activation import activate
from aitune_trt_aot.checkpoint import FORMAT_VERSION, CheckpointEntry
from aitune_trt_aot.compat import build_environment
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.pipeline.job import Build, BuildJob, StepTracker, TorchTensorRTAotBuildStep
from aitune_trt_aot.pipeline.self_check import compare_with_eager, engines_of
from aitune_trt_aot.plan import BuildPlan
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.toolkit import Toolkit

logger = logging.getLogger(__name__)


def fingerprint(job: BuildJob, module: nn.Module, plan: BuildPlan, guard: ShapeGuard) -> str | None:
    """The cache key of this build: model, config, plan, input ranges, machine; None where the model cannot be read."""
    config = job.config.to_dict()
    del config["build_cache"], config["warm_up"]  # neither changes what is built
    try:
        facts = {
            "config": config,
            "plan": plan.describe(),
            "inputs": guard.to_dict(),
            "machine": build_environment(job.device),
            "checkpoint_format": FORMAT_VERSION,  # an older reader could not load what this version writes
        }
        return build_cache.build_fingerprint(module, facts)
    except Exception as error:  # a model the fingerprint cannot read (e.g. quantized weights): no cache
        logger.warning("Build cache skipped: cannot fingerprint this model (%s: %s).", type(error).__name__, error)
        return None


def reuse_cached_build(
    cached: build_cache.CachedBuild,
    job: BuildJob,
    module: nn.Module,
    plan: BuildPlan,
    guard: ShapeGuard,
    toolkit: Toolkit,
    track: StepTracker,
) -> Build | None:
    """The cached build, copied into AITune's folder, loaded and checked against eager; None where it is unusable.

    A cached artifact that does not load or does not match eager (the model changed in a way the fingerprint cannot
    see) is dropped from the cache, and the caller builds afresh.
    """
    artifact = ArtifactPath(job.cache_dir, cached.artifact.name)
    kernels = None
    if cached.kernel_cache is not None and cached.kernel_cache.is_file():
        kernels = ArtifactPath(job.cache_dir, cached.kernel_cache.name)
    entry = CheckpointEntry.from_build_facts(
        cached.facts, config=job.config, artifact=artifact, device=job.device, shape_guard=guard, kernel_cache=kernels
    )
    try:
        with track(TorchTensorRTAotBuildStep.ARTIFACT_LOAD):
            build_cache.copy_out(cached, artifact.path, None if kernels is None else kernels.path)
            activation = activate(entry, job.device, toolkit, checksum_verified=True)  # lookup hashed these bytes
        with track(TorchTensorRTAotBuildStep.SELF_CHECK):
            # These exact bytes passed the full check when stored, on a machine with the same facts: one call
            # is enough to catch a model changed in a way the fingerprint cannot see.
            engines = engines_of(activation, job.config.check_shapes)
            report = compare_with_eager(
                engines, module, job.samples, job.device, plan.tolerance, shapes_to_check=1, repeats=1
            )
        if report.mismatch is not None:
            raise BuildError(f"it does not reproduce eager PyTorch ({report.mismatch.problem})")
    except Exception as error:
        logger.warning(
            "The build cached in %s cannot be reused (%s: %s); dropping it and building afresh.",
            cached.folder,
            type(error).__name__,
            error,
        )
        build_cache.discard(cached.folder)
        artifact.path.unlink(missing_ok=True)
        if kernels is not None:
            kernels.path.unlink(missing_ok=True)
        return None
    logger.info(
        "%s: reusing the build of %s (build cache entry %s) for %s.",
        holders.describe_me(),
        _builder(cached),
        cached.folder,
        plan.describe(),
    )
    return Build(entry=entry, activation=activation, from_cache=True)


def _builder(cached: build_cache.CachedBuild) -> str:
    """Who built a cached entry, in words (entries stored before this was recorded: an earlier process)."""
    holder = holders.Holder.from_json(cached.facts.get("built_by"))
    return "an earlier process" if holder is None else holder.describe()


def store_build(fingerprint: str, entry: CheckpointEntry) -> None:
    """Put the checked artifact, its kernel cache and its build facts in the cache (a failure to store only logs)."""
    kernels = None if entry.kernel_cache is None else entry.kernel_cache.path
    build_cache.store(fingerprint, entry.artifact.path, entry.build_facts(), kernel_cache=kernels)
