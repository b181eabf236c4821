"""The contract every IR frontend fulfils: take a module and its input ranges, return compiled code."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import torch
from aitune.torch.module.graph_spec import GraphSpec
from torch import nn

from aitune_trt_aot import hints
from aitune_trt_aot.compiled import CompiledModel, Sample
from aitune_trt_aot.ranges import InputRange


@dataclass(frozen=True)
class FrontendOptions:
    """Frontend choices from the backend config.

    Attributes:
        ts_capture: How the TorchScript frontend captures the module (``"trace"`` or ``"script"``).
        reduced_dtype: The reduced precision for frontends that take it as builder flags (``weak_typing``).

    """

    ts_capture: str = "trace"
    reduced_dtype: torch.dtype | None = None


@dataclass
class CompileRequest:
    """Everything a frontend needs for one build.

    Attributes:
        module: The module to compile, in eval mode, on ``device``, already cast when the precision
            plan casts the module.
        graph_spec: AITune's recorded graph (the dynamo frontend's exporter reads its dynamic axes).
        ranges: The min/opt/max shape of each tensor input, computed once by the plan.
        sample: One recorded call ``(args, kwargs)``.
        device: The CUDA device to build for.
        settings: Effective Torch-TensorRT ``CompilationSettings`` (precision already resolved).
        options: Frontend options from the backend config.
        torch_tensorrt: The imported ``torch_tensorrt`` module (None for frontends that need none: CPU test fakes).
        quantized: ``module`` holds ModelOpt quantizers (``pipeline/quantize.py``): capture and compile it under
            ``quantization.quantized_export``, and count its layers' precisions (``compiled.layer_precisions``).

    """

    module: nn.Module
    graph_spec: GraphSpec
    ranges: list[InputRange]
    sample: Sample
    device: torch.device
    settings: Any
    options: FrontendOptions
    torch_tensorrt: ModuleType | None
    quantized: bool = False

    def trt_inputs(self, names: list[str] | None = None) -> list[Any]:
        """One ``torch_tensorrt.Input`` profile per tensor input, from :attr:`ranges` (optionally named)."""
        named = [{"name": n} for n in names] if names is not None else [{} for _ in self.ranges]
        return [
            self.torch_tensorrt.Input(
                min_shape=r.min_shape, opt_shape=r.opt_shape, max_shape=r.max_shape, dtype=r.dtype, **extra
            )
            for r, extra in zip(self.ranges, named, strict=True)
        ]


class Frontend(ABC):
    """One Torch-TensorRT IR: what it needs, what it can write, and how to compile with it.

    What a frontend supports is declared here as data (``feature``, ``formats``, ``positional_only``,
    ``accepted_settings``, ``typed_precision``, ``reduced_dtypes``, ``quantizes``); the build plan
    (``aitune_trt_aot.plan``) reads it and owns every refusal. The registry (``aitune_trt_aot.frontends.FRONTENDS``)
    is the list of ``ir`` names and ``aliases``.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()  # other spellings the config accepts for ``ir``
    feature: ClassVar[str]  # Torch-TensorRT ENABLED_FEATURES flag the frontend needs
    alternative: ClassVar[str] = hints.USE_GENERAL_IR  # what the plan suggests where this IR is missing
    formats: ClassVar[tuple[str, ...]]  # artifact formats it can write; the first is the default
    positional_only: ClassVar[bool] = False  # compiles only calls made of positional tensors
    accepted_settings: ClassVar[frozenset[str] | None] = None  # CompilationSettings fields it uses; None: all
    reduced_dtypes: ClassVar[frozenset[torch.dtype] | None] = None  # reduced precisions it can build; None: all
    typed_precision: ClassVar[bool] = False  # reduced precision typed into the network (else builder flags)
    quantizes: ClassVar[bool] = False  # carries ModelOpt's quantize/dequantize nodes to TensorRT (int8, fp8)

    @property
    def default_format(self) -> str:
        """The format ``output_format="auto"`` means for this frontend."""
        return self.formats[0]

    @abstractmethod
    def compile(self, request: CompileRequest) -> CompiledModel:
        """Compile ``request.module`` into TensorRT engines for the shape ranges in the request."""
