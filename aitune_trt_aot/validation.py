"""Build-time self-check: the persisted engines must reproduce eager PyTorch on recorded calls and the range ends.

AITune checks outputs only for NaN/inf; a frontend that returns finite but wrong numbers would pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_leaves

Call = tuple[tuple, dict]

# Relative to the largest eager output (at least 1). Loose on purpose: this catches broken engines,
# not the rounding differences of TF32 or fp16.
TOLERANCE = {None: 1e-2, torch.float16: 1e-1, torch.bfloat16: 1e-1}


def output_mismatch(actual: Any, expected: Any, reduced_dtype: torch.dtype | None) -> str | None:
    """Describe how ``actual`` departs from ``expected`` beyond tolerance, or return None when it matches."""
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
        error = float((got.float() - want.float()).abs().max())
        scale = max(1.0, float(want.float().abs().max()))
        if error > TOLERANCE[reduced_dtype] * scale:
            return f"output {index} differs from eager by up to {error:.3g} (output scale {scale:.3g})"
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
