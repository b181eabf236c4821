"""Build-time self-check: the persisted engines must reproduce eager PyTorch on recorded calls and the range ends.

AITune checks outputs only for NaN/inf; a frontend that returns finite but wrong numbers would pass. What counts as
reproducing eager is a :data:`Tolerance`: the largest error relative to the output scale for fp32 and 16-bit
engines (:class:`MaxAbsTolerance`), cosine similarity and relative L2 error per output for 8-bit ones
(:class:`QuantizedTolerance`), whose rounding is spread over every value and larger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_leaves

Call = tuple[tuple, dict]

# Relative to the largest eager output (at least 1). Loose on purpose: this catches broken engines,
# not the rounding differences of TF32 or fp16.
TOLERANCE = {None: 1e-2, torch.float16: 1e-1, torch.bfloat16: 1e-1}


@dataclass(frozen=True)
class MaxAbsTolerance:
    """fp32 and 16-bit engines: the largest absolute error, relative to the largest eager value (at least 1).

    Attributes:
        reduced: The reduced dtype the engines compute in (None: fp32); picks the bound in ``TOLERANCE``.

    """

    reduced: torch.dtype | None = None

    def departure(self, index: int, got: torch.Tensor, want: torch.Tensor) -> str | None:
        """How output ``index`` departs from eager beyond the bound, or None."""
        error = float((got.float() - want.float()).abs().max())
        scale = max(1.0, float(want.float().abs().max()))
        if error > TOLERANCE[self.reduced] * scale:
            return f"output {index} differs from eager by up to {error:.3g} (output scale {scale:.3g})"
        return None


@dataclass(frozen=True)
class QuantizedTolerance:
    """8-bit engines: per output, cosine similarity and relative L2 error against eager (fp32) PyTorch.

    Attributes:
        precision: ``"int8"`` or ``"fp8"`` (named in the messages).
        min_cosine: Smallest cosine similarity of the flattened output to eager's.
        max_relative_error: Largest ``||output - eager|| / ||eager||``.

    """

    precision: str
    min_cosine: float
    max_relative_error: float

    def departure(self, index: int, got: torch.Tensor, want: torch.Tensor) -> str | None:
        """Which bound output ``index`` misses (metric, value, threshold), or None."""
        cosine, relative = accuracy_metrics(got, want)
        if cosine < self.min_cosine:
            return (
                f"output {index} of the {self.precision} engines has cosine similarity {cosine:.6f} to eager, below "
                f"quantization min_cosine={self.min_cosine:g} (relative error {relative:.4g})"
            )
        if relative > self.max_relative_error:
            return (
                f"output {index} of the {self.precision} engines has relative error {relative:.4g} to eager, above "
                f"quantization max_relative_error={self.max_relative_error:g} (cosine similarity {cosine:.6f})"
            )
        return None


Tolerance = MaxAbsTolerance | QuantizedTolerance


def accuracy_metrics(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """Cosine similarity and relative L2 error of ``got`` to ``want``, both flattened, in float64.

    Two all-zero tensors are identical (1.0, 0.0); a zero ``want`` with a non-zero ``got`` has an infinite relative
    error and a cosine of 0.
    """
    a, b = got.detach().double().flatten(), want.detach().double().flatten()
    norm_a, norm_b = float(a.norm()), float(b.norm())
    difference = float((a - b).norm())
    if norm_b == 0.0:
        return (1.0, 0.0) if norm_a == 0.0 else (0.0, float("inf"))
    cosine = 0.0 if norm_a == 0.0 else float(torch.dot(a, b)) / (norm_a * norm_b)
    return cosine, difference / norm_b


def output_mismatch(actual: Any, expected: Any, tolerance: Tolerance) -> str | None:
    """Describe how ``actual`` departs from ``expected`` beyond ``tolerance``, or return None when it matches."""
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    if actual_spec != expected_spec:
        return f"the output structure differs: {actual_spec} vs eager {expected_spec}"
    for index, (got, want) in enumerate(zip(actual_leaves, expected_leaves, strict=True)):
        if not isinstance(want, torch.Tensor) or not want.is_floating_point():
            continue
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return f"output {index} is {getattr(got, 'shape', got)!r}, eager gives shape {tuple(want.shape)}"
        if not torch.isfinite(got).all():
            return f"output {index} contains NaN or infinity"
        problem = tolerance.departure(index, got, want)
        if problem is not None:
            return problem
    return None


def tensor_shapes(call: Call) -> tuple[tuple[int, ...], ...]:
    """The shapes of every tensor of ``call``, in argument order."""
    return tuple(tuple(t.shape) for t in tree_leaves(call) if isinstance(t, torch.Tensor))


def self_check_calls(
    recorded: Iterable[Call], shapes_to_check: int, range_ends: Sequence[Call] = ()
) -> list[tuple[bool, Call]]:
    """The calls the self-check compares, as ``(recorded?, call)``: one per shape, recorded calls first.

    Up to ``shapes_to_check`` differently shaped recorded calls (the rest are not read), then each range-end call
    whose shapes no earlier call had.
    """
    seen: set[tuple] = set()
    calls: list[tuple[bool, Call]] = []
    for call in recorded if shapes_to_check > 0 else ():
        shapes = tensor_shapes(call)
        if shapes not in seen:
            seen.add(shapes)
            calls.append((True, call))
            if len(calls) == shapes_to_check:
                break
    for call in range_ends:
        shapes = tensor_shapes(call)
        if shapes not in seen:  # also drops the second end of a one-size range
            seen.add(shapes)
            calls.append((False, call))
    return calls
