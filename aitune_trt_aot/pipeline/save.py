"""Save step: the compiled model written to one artifact file, and the checkpoint entry that records it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from aitune.torch.checkpoint.artifact import ArtifactPath

from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compat import build_environment
from aitune_trt_aot.compiled import CompiledModel, Coverage
from aitune_trt_aot.files import file_digest, write_atomically
from aitune_trt_aot.pipeline.job import BuildJob
from aitune_trt_aot.plan import BuildPlan
from aitune_trt_aot.shapes import ShapeGuard


def save_artifact(
    compiled: CompiledModel, plan: BuildPlan, job: BuildJob, on_native_compile: Callable[[], None] | None = None
) -> ArtifactPath:
    """Write ``compiled`` in the plan's format into AITune's folder for this backend; never a half-written file.

    ``on_native_compile`` as for ``ArtifactFormat.save``.
    """
    artifact = ArtifactPath(job.cache_dir, f"model{plan.artifact_format.suffix}")
    save = partial(
        plan.artifact_format.save,
        compiled,
        pickle_protocol=job.config.pickle_protocol,
        on_native_compile=on_native_compile,
    )
    write_atomically(artifact.path, save)
    return artifact


def built_entry(
    job: BuildJob, plan: BuildPlan, artifact: ArtifactPath, guard: ShapeGuard, coverage: Coverage
) -> CheckpointEntry:
    """The checkpoint entry of a freshly saved artifact: its checksum and what it was built for, recorded now."""
    return CheckpointEntry(
        config=job.config,
        artifact=artifact,
        artifact_format=plan.artifact_format.name,
        device=job.device,
        shape_guard=guard,
        precision=plan.precision.describe(),
        coverage=coverage,
        checksum=file_digest(artifact.path),
        built_for=build_environment(job.device),
    )
