"""The shapes and dtype a tensor input accepts: one type for the call guard, the ``.pt2`` runtime and ``inspect``.

:class:`InputRange` holds the range, its check (:meth:`InputRange.violation`) and its text
(:meth:`InputRange.describe`); :func:`graph_spec_ranges` and :func:`program_ranges` read ranges from what AITune
recorded and from an exported program. Only torch is imported here, so the ``.pt2`` runtime keeps working where
neither AITune nor Torch-TensorRT is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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


def clamped_to_proof(wanted: list[InputRange], proven: list[InputRange]) -> list[InputRange]:
    """``wanted`` with each axis's largest size cut to what ``torch.export`` proved (``proven``, same order).

    ``proven`` comes from :func:`program_ranges`; an axis it bounds lower than ``wanted`` asks (an operation whose
    kernels accept at most 65535 rows, say) is cut to that bound, and its optimisation size with it. Axes the proof
    leaves unbounded, or a ``proven`` list that does not line up with ``wanted``, change nothing.
    """
    if len(proven) != len(wanted):
        return wanted
    clamped = []
    for want, proof in zip(wanted, proven, strict=True):
        if len(proof.max_shape) != len(want.max_shape):
            clamped.append(want)
            continue
        highs = tuple(
            high if bound is None or high is None or bound >= high or bound < (low or 0) else bound
            for low, high, bound in zip(want.min_shape, want.max_shape, proof.max_shape, strict=True)
        )
        clamped.append(with_max_shape(want, highs))
    return clamped


def with_max_shape(spec: InputRange, max_shape: tuple[int | None, ...]) -> InputRange:
    """``spec`` with another largest shape; its optimisation shape is kept inside the range."""
    opt = spec.opt_shape
    if opt is not None:
        opt = tuple(size if high is None else min(size, high) for size, high in zip(opt, max_shape, strict=True))
    return replace(spec, max_shape=tuple(max_shape), opt_shape=opt)


def capped(ranges: list[InputRange], raised: dict[tuple[int, int], int], top: int) -> list[InputRange]:
    """``ranges`` with every axis in ``raised`` ((range index, axis) -> its largest recorded size) cut to ``top``.

    An axis is never cut below its largest recorded size: recorded calls are what the engines were checked on.
    """
    result = []
    for index, spec in enumerate(ranges):
        highs = tuple(
            high if (index, axis) not in raised or high is None else min(high, max(top, raised[index, axis]))
            for axis, high in enumerate(spec.max_shape)
        )
        result.append(with_max_shape(spec, highs) if highs != spec.max_shape else spec)
    return result


def describe_all(ranges: list[InputRange]) -> str:
    """Every range as ``name [1..16, 64] float32``, comma-separated (for logs and messages)."""
    return ", ".join(f"{spec.name} {spec.describe()}" for spec in ranges)
