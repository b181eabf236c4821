"""The shapes and dtype a tensor input accepts: one type for the call guard, the ``.pt2`` runtime and ``inspect``.

:class:`InputRange` holds the range, its check (:meth:`InputRange.violation`) and its text
(:meth:`InputRange.describe`); :func:`graph_spec_ranges` and :func:`program_ranges` read ranges from what AITune
recorded and from an exported program. Only torch is imported here, so the ``.pt2`` runtime keeps working where
neither AITune nor Torch-TensorRT is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from aitune.torch.module.graph_spec import GraphSpec
    from torch.export import ExportedProgram


@dataclass(frozen=True)
class InputRange:
    """The allowed shapes and dtype of one tensor input.

    Attributes:
        locator: Where the tensor sits in the forward call's bound arguments (AITune's ``Locator``); None for the
            flat inputs of a ``.pt2`` package.
        name: Readable name of that place (``x``, ``inputs[0]``, ``mask``, ``tensor 0``).
        min_shape: Smallest allowed size of each dimension; None where the size is not checked (a ``.pt2`` axis
            that is an expression of other axes).
        opt_shape: Size TensorRT optimises for; None where not recorded (``.pt2`` packages).
        max_shape: Largest allowed size of each dimension; None where unbounded or not checked.
        dtype: The tensor's dtype.

    """

    locator: Any
    name: str
    min_shape: tuple[int | None, ...]
    opt_shape: tuple[int, ...] | None
    max_shape: tuple[int | None, ...]
    dtype: torch.dtype

    def violation(self, tensor: Any) -> str | None:
        """Describe why ``tensor`` does not fit this range (``has shape ...``), or return None when it does."""
        if not isinstance(tensor, torch.Tensor):
            return f"expected a tensor, got {type(tensor).__name__}"
        shape = tuple(tensor.shape)
        if len(shape) != len(self.min_shape):
            return f"has {len(shape)} dimensions {shape}, the engine takes {len(self.min_shape)}"
        for axis, (size, low, high) in enumerate(zip(shape, self.min_shape, self.max_shape, strict=True)):
            if (low is not None and size < low) or (high is not None and size > high):
                return f"has shape {shape}: dimension {axis} is {size}, outside the built range {low}..{_text(high)}"
        if tensor.dtype != self.dtype:
            return f"has dtype {tensor.dtype}, the engine was built for {self.dtype}"
        return None

    def describe(self) -> str:
        """``[1..16, 64] float32``: each axis as its one size or its ``min..max`` (``?``: not checked)."""
        axes = []
        for low, high in zip(self.min_shape, self.max_shape, strict=True):
            if low is None and high is None:
                axes.append("?")
            elif low == high:
                axes.append(str(low))
            else:
                axes.append(f"{_text(low)}..{_text(high)}")
        return f"[{', '.join(axes)}] {str(self.dtype).removeprefix('torch.')}"

    @property
    def dims(self) -> tuple[tuple[int | None, int | None] | None, ...]:
        """``(min, max)`` per axis, None where the axis is not checked: the form a ``.pt2`` package records."""
        return tuple(
            None if low is None and high is None else (low, high)
            for low, high in zip(self.min_shape, self.max_shape, strict=True)
        )

    def size_bounds(self) -> tuple[str, str]:
        """Comma-separated lowest and highest size per axis, ``-1`` where unchecked or unbounded.

        A form C++ reads without a JSON parser (``examples/cpp/inference.cpp``), stored in a package's metadata
        as ``aitune_trt_aot.input_<i>.min`` and ``.max``.
        """
        lows = [-1 if low is None else low for low in self.min_shape]
        highs = [-1 if high is None else high for high in self.max_shape]
        return ",".join(map(str, lows)), ",".join(map(str, highs))

    def to_json(self) -> dict[str, Any]:
        """The form stored in a ``.pt2`` package's metadata: ``{"dims": [[min, max] or None, ...], "dtype": ...}``."""
        return {"dims": [None if d is None else list(d) for d in self.dims], "dtype": str(self.dtype)}

    @classmethod
    def from_json(cls, data: dict[str, Any], name: str) -> InputRange:
        """Read :meth:`to_json` output (packages name their flat inputs by position: ``tensor 0``)."""
        dims = [(None, None) if d is None else (d[0], d[1]) for d in data["dims"]]
        return cls(
            locator=None,
            name=name,
            min_shape=tuple(low for low, _ in dims),
            opt_shape=None,
            max_shape=tuple(high for _, high in dims),
            dtype=dtype_named(data["dtype"]),
        )


def _text(size: int | None) -> str:
    return "" if size is None else str(size)


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype written as ``torch.float32`` or ``float32``."""
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name!r} names no torch dtype.")
    return dtype


def graph_spec_ranges(graph_spec: GraphSpec) -> list[InputRange]:
    """One range per tensor input AITune recorded in ``graph_spec`` (user shape definitions first)."""
    ranges = []
    for locator, tensor_spec in graph_spec.input_spec.tensor_data:
        min_shape, opt_shape, max_shape = graph_spec.get_effective_input_shapes(locator, tensor_spec)
        ranges.append(
            InputRange(
                locator=locator,
                name=locator.display_path,
                min_shape=tuple(int(d) for d in min_shape),
                opt_shape=tuple(int(d) for d in opt_shape),
                max_shape=tuple(int(d) for d in max_shape),
                dtype=tensor_spec.dtype,
            )
        )
    return ranges


def program_ranges(program: ExportedProgram) -> list[InputRange]:
    """One range per tensor input of an exported program, in the order its package takes them (flat, by position).

    Dynamic axes get the range ``torch.export`` proved, static axes their size; an axis whose size is an expression
    of other axes is not checked (it follows from them).
    """
    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    ranges = []
    for name in program.graph_signature.user_inputs:
        value = placeholders[name].meta.get("val")
        if not isinstance(value, torch.Tensor):
            continue
        lows: list[int | None] = []
        highs: list[int | None] = []
        for size in value.shape:
            if isinstance(size, int):
                lows.append(size)
                highs.append(size)
                continue
            bounds = program.range_constraints.get(size.node.expr)
            upper = None if bounds is None else bounds.upper
            lows.append(None if bounds is None else int(bounds.lower))
            highs.append(None if upper is None or upper == float("inf") or not upper.is_finite else int(upper))
        ranges.append(InputRange(None, f"tensor {len(ranges)}", tuple(lows), None, tuple(highs), value.dtype))
    return ranges
