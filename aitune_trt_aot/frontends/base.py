"""The contract every IR frontend fulfils: take a module and AITune's graph spec, return compiled code."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import torch
from aitune.torch.module.graph_spec import GraphSpec
from aitune.torch.module.sample_store import Sample
from torch import nn

from aitune_trt_aot.stack import MissingRequirementError


@dataclass
class CompileRequest:
    """Everything a frontend needs for one build.

    Attributes:
        module: The module to compile, in eval mode, on ``device``, already cast when the precision
            plan casts the module.
        graph_spec: AITune's recorded graph: input shapes, batch axes, forward signature.
        sample: One recorded call ``(args, kwargs)``.
        device: The CUDA device to build for.
        settings: Effective Torch-TensorRT ``CompilationSettings`` (precision already resolved).
        options: Frontend options from the backend config (e.g. ``ts_capture``).
        torch_tensorrt: The imported ``torch_tensorrt`` module.

    """

    module: nn.Module
    graph_spec: GraphSpec
    sample: Sample
    device: torch.device
    settings: Any
    options: dict[str, Any]
    torch_tensorrt: ModuleType


@dataclass
class CompiledModel:
    """What a frontend built.

    Attributes:
        module: The compiled module (``torch.fx.GraphModule`` or ``torch.jit.ScriptModule``).
        sample: The exact call used for capture, on the build device.
        dynamic_shapes: The ``torch.export`` dynamic shapes used for capture, when there were any.
        constants: Plain-valued arguments built into the engines, by name (recorded in some formats).

    """

    module: Any
    sample: Sample
    dynamic_shapes: Any = None
    constants: dict[str, Any] = field(default_factory=dict)


class Frontend(ABC):
    """One Torch-TensorRT IR: how to check it is installed and how to compile with it."""

    name: ClassVar[str]
    feature: ClassVar[str]
    alternative: ClassVar[str] = "ir='dynamo'"
    other_formats: ClassVar[tuple[str, ...]] = ()  # formats a config may ask for besides the default
    positional_only: ClassVar[bool] = False  # compiles only calls made of positional tensors

    @abstractmethod
    def artifact_format(self, tensorrt_rtx: bool) -> str:
        """Name of the format this frontend's output is saved in by default (see ``aitune_trt_aot.formats``)."""

    def check_available(self, features: dict[str, bool]) -> None:
        """Raise before any work when the installed Torch-TensorRT lacks this frontend."""
        if not features.get(self.feature, False):
            rtx_note = (
                " (TensorRT-RTX builds of Torch-TensorRT never include it)" if features.get("tensorrt_rtx") else ""
            )
            raise MissingRequirementError(
                f"ir={self.name!r} needs Torch-TensorRT's {self.feature}, which this installation does not "
                f"have{rtx_note}. Use {self.alternative} instead."
            )

    def check_inputs(self, request: CompileRequest) -> None:
        """Raise :class:`UnsupportedInputsError` before any work when this IR cannot compile the call."""
        if self.positional_only:
            positional_tensor_inputs(request, self.name)

    @abstractmethod
    def compile(self, request: CompileRequest) -> CompiledModel:
        """Compile ``request.module`` into TensorRT engines for the shape ranges in the graph spec."""


class UnsupportedInputsError(ValueError):
    """The model's call has inputs the chosen frontend cannot compile."""


def positional_tensor_inputs(request: CompileRequest, ir: str) -> tuple[torch.Tensor, ...]:
    """The call's inputs, which must all be positional tensors for the TorchScript and FX frontends."""
    args, kwargs = request.sample
    problems = []
    keyword_inputs = sorted(k for k, v in kwargs.items() if v is not None)
    if keyword_inputs:
        problems.append(f"keyword inputs {keyword_inputs}")
    non_tensors = [f"argument {i} ({type(a).__name__})" for i, a in enumerate(args) if not isinstance(a, torch.Tensor)]
    if non_tensors:
        problems.append("non-tensor or nested inputs: " + ", ".join(non_tensors))
    if problems:
        raise UnsupportedInputsError(
            f"ir={ir!r} compiles calls whose inputs are positional tensors only; this model is called with "
            f"{'; '.join(problems)}. Use ir='dynamo', which supports keyword, nested and non-tensor inputs."
        )
    return tuple(args)
