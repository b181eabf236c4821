"""What a frontend hands to an artifact format: the compiled module, and how much of it runs in TensorRT.

For quantized builds, coverage also says how many layers (matrix multiplications, convolutions, attention) take
8-bit inputs, read from the captured graph: a layer both of whose operands come from quantize/dequantize nodes
runs in INT8/FP8, any other in the 16/32-bit precision around them (:func:`layer_precisions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from aitune_trt_aot.ranges import InputRange

Sample = tuple[tuple, dict]  # one recorded call: (args, kwargs)

_ENGINE_MODULES = {"TorchTensorRTModule", "TRTModule"}  # dynamo engines; the FX frontend's engines
_IGNORED_TARGETS = {"getitem"}
# ATen ops that are a network's compute layers, by op name (``aten.<name>.<overload>``), and the positions of their
# two operands (data, weight) among the arguments.
_LAYER_OPERANDS = {
    **dict.fromkeys(("linear", "matmul", "mm", "bmm", "conv1d", "conv2d", "conv3d", "convolution"), (0, 1)),
    **dict.fromkeys(("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"), (0, 1)),
    **dict.fromkeys(("addmm", "baddbmm"), (1, 2)),
    **dict.fromkeys(
        (
            "scaled_dot_product_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_flash_attention_for_cpu",
        ),
        (0, 1),
    ),
}
# Ops that only move or relabel values: an operand reached through them still comes from the node before them.
_PASS_THROUGH = {
    "alias", "clone", "contiguous", "detach", "expand", "flatten", "permute", "reshape", "squeeze", "t",
    "transpose", "unflatten", "unsqueeze", "view", "_unsafe_view",
}  # fmt: skip
UNQUANTIZED = "unquantized"  # the key of layers in 16/32 bit in ``Coverage.layers``


@dataclass(frozen=True)
class Coverage:
    """How much of a compiled graph runs in TensorRT.

    Attributes:
        engines: TensorRT engines built.
        tensorrt_ops: Operations of the captured graph that run inside those engines (None when the frontend
            cannot tell, e.g. TorchScript).
        pytorch_ops: Operations left to PyTorch.
        layers: For quantized builds, compute layers by the precision of their inputs (``{"int8": 12,
            "unquantized": 3}``, :func:`layer_precisions`); None for other builds.

    """

    engines: int
    tensorrt_ops: int | None
    pytorch_ops: int
    layers: dict[str, int] | None = None

    def describe(self) -> str:
        """``2 TensorRT engines, 14 ops in TensorRT, 3 in PyTorch`` (``; layers: 12 int8, 3 unquantized``)."""
        in_trt = "" if self.tensorrt_ops is None else f", {self.tensorrt_ops} ops in TensorRT"
        text = (
            f"{self.engines} TensorRT engine{'s' if self.engines != 1 else ''}{in_trt}, {self.pytorch_ops} in PyTorch"
        )
        if self.layers is not None:
            text += f"; layers: {describe_layers(self.layers)}"
        return text

    def quantized_layers(self) -> int:
        """How many layers take 8-bit inputs (0 where the build is not quantized)."""
        return sum(count for kind, count in (self.layers or {}).items() if kind != UNQUANTIZED)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints and ``.pt2`` metadata."""
        return {
            "engines": self.engines,
            "tensorrt_ops": self.tensorrt_ops,
            "pytorch_ops": self.pytorch_ops,
            "layers": None if self.layers is None else dict(self.layers),
        }


def describe_layers(layers: dict[str, int]) -> str:
    """``12 int8, 3 unquantized (16/32-bit)``: quantized kinds first."""
    parts = [f"{count} {kind}" for kind, count in sorted(layers.items()) if kind != UNQUANTIZED]
    parts.append(f"{layers.get(UNQUANTIZED, 0)} {UNQUANTIZED} (16/32-bit)")
    return ", ".join(parts)


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


def _op_name(node: torch.fx.Node) -> str:
    """``linear`` for ``aten.linear.default``; ``quantize_op`` for ``tensorrt.quantize_op.default``."""
    parts = str(node.target).split(".")
    return parts[1] if len(parts) >= 2 else parts[0]


def _quantized_kind(node: torch.fx.Node) -> str | None:
    """The 8-bit type of a quantize/dequantize node (``int8``, ``fp8``), None for any other node.

    ModelOpt's export (``export_torch_mode``) writes ``tensorrt.quantize_op(x, amax, num_bits, exponent_bits, ...)``:
    exponent bits 0 is an integer type, 4 of 8 bits FP8 (E4M3).
    """
    if node.op != "call_function" or not str(node.target).startswith("tensorrt.") or "quantize" not in _op_name(node):
        return None
    bits, exponent = (list(node.args[2:4]) + [None, None])[:2]
    if not isinstance(bits, int) or not isinstance(exponent, int):
        return "8-bit"
    if exponent == 0:
        return f"int{bits}"
    return "fp8" if (bits, exponent) == (8, 4) else f"fp{bits}(e{exponent}m{bits - exponent - 1})"


def _operand_kind(value: Any) -> str | None:
    """The 8-bit type an operand comes from (through ops that only move values), None if not quantized."""
    while isinstance(value, torch.fx.Node):
        kind = _quantized_kind(value)
        if kind is not None:
            return kind
        if value.op != "call_function" or _op_name(value) not in _PASS_THROUGH or not value.args:
            return None
        value = value.args[0]
    return None


def layer_precisions(graph_module: torch.fx.GraphModule) -> dict[str, int]:
    """Compute layers of a captured graph by input precision: ``{"int8": 12, "unquantized": 3}``.

    A layer (``_LAYER_OPERANDS``) both of whose operands come from quantize/dequantize nodes of one 8-bit type runs
    in that type; TensorRT fuses such a pair into an 8-bit kernel. A layer with one quantized operand (a weight-only
    quantization) or none runs in the precision around it and counts as unquantized. Read from the graph, so what is
    counted is what was exported, not what the config asked for.
    """
    counts = {UNQUANTIZED: 0}
    for node in graph_module.graph.nodes:
        operands = _LAYER_OPERANDS.get(_op_name(node)) if node.op == "call_function" else None
        if operands is None or len(node.args) <= max(operands):
            continue
        kinds = {_operand_kind(node.args[position]) for position in operands}
        kind = next(iter(kinds)) if len(kinds) == 1 and None not in kinds else UNQUANTIZED
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def graph_coverage(
    compiled: torch.fx.GraphModule, source_ops: int | None, layers: dict[str, int] | None = None
) -> Coverage:
    """Coverage of a compiled graph whose source graph had ``source_ops`` operations (None: unknown).

    ``layers``: the source graph's :func:`layer_precisions`, for quantized builds.
    """
    engines = sum(type(m).__name__ in _ENGINE_MODULES for m in compiled.modules())
    in_pytorch = count_ops(compiled)
    in_tensorrt = None if source_ops is None else max(0, source_ops - in_pytorch)
    return Coverage(engines=engines, tensorrt_ops=in_tensorrt, pytorch_ops=in_pytorch, layers=layers)


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
