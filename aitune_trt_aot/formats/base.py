"""The contract every artifact format fulfils: write a compiled model to one file, load it back to run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from aitune_trt_aot.frontends.base import CompiledModel


class ArtifactFormat(ABC):
    """One on-disk form of a compiled model."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    # Which Torch-TensorRT runtime the saved engines run in: "cpp" (TorchTensorRTModule, the TorchScript
    # runtime, AOTInductor) or "python" (PythonTorchTensorRTModule; its calls can be captured in CUDA graphs).
    runtime: ClassVar[str] = "cpp"

    @abstractmethod
    def save(self, compiled: CompiledModel, path: Path, *, pickle_protocol: int) -> None:
        """Write ``compiled`` to ``path`` (the caller makes the write atomic)."""

    @abstractmethod
    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Load the artifact at ``path`` and return a callable that runs it on ``device``."""
