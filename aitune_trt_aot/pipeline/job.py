"""What a build starts from and ends with, and the steps it reports to AITune."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from aitune.torch.backend.backend import BackendBuildStep
from aitune.torch.module.graph_spec import GraphSpec
from torch import nn

from aitune_trt_aot.activation import Activation
from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compiled import Sample
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig


class TorchTensorRTAotBuildStep(BackendBuildStep):
    """The steps of a build, as AITune's build report lists them."""

    CACHE_LOOKUP = "Build cache lookup"
    QUANTIZE = "ModelOpt quantization and calibration"
    COMPILE = "Capture and Torch-TensorRT compile"
    ARTIFACT_SAVE = "Compiled artifact save"
    ARTIFACT_LOAD = "Compiled artifact load"
    SELF_CHECK = "Compare with eager PyTorch"
    KERNEL_CACHE_SAVE = "Kernel cache save"


# Records one step: a context manager giving the dict the step writes its facts into (AITune's _track_build_step).
StepTracker = Callable[[TorchTensorRTAotBuildStep], AbstractContextManager[dict[str, Any]]]


@contextlib.contextmanager
def untracked(step: TorchTensorRTAotBuildStep) -> Iterator[dict[str, Any]]:
    """A :data:`StepTracker` that keeps nothing."""
    yield {"step": step}


@dataclass(frozen=True)
class BuildJob:
    """What AITune hands a build.

    Attributes:
        config: What the user asked for.
        module: The module to build (put in eval mode and on ``device`` by the build).
        graph_spec: AITune's recording of the graph: signature and the shapes seen.
        samples: The recorded calls (AITune's ``SampleStore``: each read loads one from disk).
        device: The device to build for and check on.
        cache_dir: The folder AITune gives this backend; the artifact and kernel cache are written there.

    """

    config: TorchTensorRTAotBackendConfig
    module: nn.Module
    graph_spec: GraphSpec
    samples: Sequence[Sample]
    device: torch.device
    cache_dir: Path


@dataclass(frozen=True)
class Build:
    """A finished build: the checkpoint entry of the checked artifact and its loaded engines.

    Attributes:
        entry: What the checkpoint stores (config, artifact, ranges, build facts).
        activation: The artifact loaded back from disk, as ``infer`` runs it.
        from_cache: True when the artifact came from the build cache instead of a compile.

    """

    entry: CheckpointEntry
    activation: Activation
    from_cache: bool
