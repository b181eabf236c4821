"""What a frontend hands to an artifact format: the compiled module, and how much of it runs in TensorRT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from aitune_trt_aot.ranges import InputRange

Sample = tuple[tuple, dict]  # one recorded call: (args, kwargs)

_ENGINE_MODULES = {"TorchTensorRTModule", "TRTModule"}  # dynamo engines; the FX frontend's engines
_IGNORED_TARGETS = {"getitem"}


@dataclass(frozen=True)
class Coverage:
    """How much of a compiled graph runs in TensorRT.

    Attributes:
        engines: TensorRT engines built.
        tensorrt_ops: Operations of the captured graph that run inside those engines (None when the frontend
            cannot tell, e.g. TorchScript).
        pytorch_ops: Operations left to PyTorch.

    """

    engines: int
    tensorrt_ops: int | None
    pytorch_ops: int

    def describe(self) -> str:
        """``2 TensorRT engines, 14 ops in TensorRT, 3 in PyTorch``."""
        in_trt = "" if self.tensorrt_ops is None else f", {self.tensorrt_ops} ops in TensorRT"
        return (
            f"{self.engines} TensorRT engine{'s' if self.engines != 1 else ''}{in_trt}, {self.pytorch_ops} in PyTorch"
        )

    def to_dict(self) -> dict[str, int | None]:
        """Plain data for checkpoints and ``.pt2`` metadata."""
        return {"engines": self.engines, "tensorrt_ops": self.tensorrt_ops, "pytorch_ops": self.pytorch_ops}


def _is_op(node: torch.fx.Node) -> bool:
    return node.op in ("call_function", "call_method") and getattr(node.target, "__name__", "") not in _IGNORED_TARGETS


def count_ops(graph_module: torch.fx.GraphModule) -> int:
    """Operations (calls other than tuple indexing) in a graph, descending into PyTorch-run submodules."""
    total = 0
    for node in graph_module.graph.nodes:
        if _is_op(node):
            total += 1
        elif node.op == "call_module":
            sub = graph_module.get_submodule(node.target)
            if isinstance(sub, torch.fx.GraphModule):
                total += count_ops(sub)
    return total


def graph_coverage(compiled: torch.fx.GraphModule, source_ops: int | None) -> Coverage:
    """Coverage of a compiled graph whose source graph had ``source_ops`` operations (None: unknown)."""
    engines = sum(type(m).__name__ in _ENGINE_MODULES for m in compiled.modules())
    in_pytorch = count_ops(compiled)
    in_tensorrt = None if source_ops is None else max(0, source_ops - in_pytorch)
    return Coverage(engines=engines, tensorrt_ops=in_tensorrt, pytorch_ops=in_pytorch)


def script_coverage(compiled: torch.jit.ScriptModule) -> Coverage:
    """Coverage of a TorchScript module compiled by Torch-TensorRT (engines are ``execute_engine`` calls)."""
    kinds = [node.kind() for node in compiled.inlined_graph.nodes()]
    engines = sum(kind == "tensorrt::execute_engine" for kind in kinds)
    in_pytorch = sum(kind.startswith("aten::") for kind in kinds)
    return Coverage(engines=engines, tensorrt_ops=None, pytorch_ops=in_pytorch)


@dataclass
class CompiledModel:
    """What a frontend built.

    Attributes:
        module: The compiled module (``torch.fx.GraphModule`` from dynamo, ``torch.jit.ScriptModule`` from ts).
        sample: The exact call used for capture, on the build device.
        coverage: Engines built and operations in TensorRT vs PyTorch.
        dynamic_shapes: The ``torch.export`` dynamic shapes used for capture, when there were any.
        constants: Plain-valued arguments built into the engines, by name (recorded in some formats).
        kernel_specialization: The config's ``kernel_specialization``, for formats whose file records it (``.pt2``
            packages, so that ``load_pt2`` applies it).
        capture_seconds: Wall time of capturing the graph (``torch.export``, tracing) before the TensorRT
            compile, where the frontend measures it.
        ranges: The input ranges the engines were built for, where the frontend narrowed the requested ones
            (``torch.export`` proved a smaller dimension); None: as requested.

    """

    module: Any
    sample: Sample
    coverage: Coverage
    dynamic_shapes: Any = None
    constants: dict[str, Any] = field(default_factory=dict)
    kernel_specialization: str = "auto"
    capture_seconds: float | None = None
    ranges: list[InputRange] | None = None

    def positional_dynamic_shapes(self) -> Any:
        """The dynamic shapes as a tuple in call order (args, then keywords), for re-exporting the compiled graph.

        The compiled graph's parameters are renamed (``arg0_1``, ...) where PyTorch-run submodules split it, so
        the name-keyed form of the original capture no longer matches.
        """
        if isinstance(self.dynamic_shapes, dict):
            return tuple(self.dynamic_shapes.values())
        return self.dynamic_shapes
