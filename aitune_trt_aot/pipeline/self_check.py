"""Self-check step: the artifact loaded back from disk must reproduce eager PyTorch.

It runs recorded calls, and calls at both ends of the built range (the recorded data tiled to the smallest and
largest shapes), through the loaded engines and through eager PyTorch. What counts as a match (the plan's tolerance:
for INT8/FP8 builds, cosine similarity and relative error per output within the quantization's thresholds) and which
calls are compared is ``aitune_trt_aot.validation``; what to do about a mismatch is ``aitune_trt_aot.hints``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from aitune.torch.utils.module import move_tensors_to_device
from torch import nn
from torch.utils._pytree import tree_leaves

from aitune_trt_aot import hints
from aitune_trt_aot.activation import Activation, call_engines
from aitune_trt_aot.compiled import Coverage, Sample
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.plan import BuildPlan
from aitune_trt_aot.ranges import InputRange, describe_all
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.validation import Tolerance, output_mismatch, self_check_calls, tensor_shapes
from aitune_trt_aot.warm_up import WarmCall

logger = logging.getLogger(__name__)

SELF_CHECK_SHAPES = 3  # differently shaped recorded calls compared with eager after each build
SELF_CHECK_REPEATS = 3  # calls per shape


@dataclass(frozen=True)
class Mismatch:
    """How the loaded engines departed from eager PyTorch on one call of the self-check."""

    recorded: bool  # a recorded call (else a call at a range end)
    problem: str
    shapes: tuple[tuple[int, ...], ...] = ()  # the shapes of every tensor of that call


@dataclass(frozen=True)
class SelfCheckReport:
    """What one self-check compared and found.

    Attributes:
        checked_shapes: The input shapes (every tensor of the call) compared and found matching, in order.
        first_call_seconds: The time of the first call at each of those shapes, together (TensorRT-RTX compiles
            kernels there, the CUDA-graph runner captures).
        mismatch: The first call that did not match, None when every call matched.
        warm_calls: The structure and shapes of the matching calls, with each one's first-call seconds, for the
            warm-up at later activations (``warm_up``; calls whose structure cannot be stored are left out).

    """

    checked_shapes: list[list[tuple[int, ...]]]
    first_call_seconds: float
    mismatch: Mismatch | None
    warm_calls: list[WarmCall] = field(default_factory=list)


def engines_of(activation: Activation, check_shapes: bool) -> Callable[..., Any]:
    """A callable that runs ``activation`` as ``infer`` does (shape guard, then runner)."""
    return lambda *args, **kwargs: call_engines(activation.runner, activation.guard, check_shapes, args, kwargs)


def compare_with_eager(
    engines: Callable[..., Any],
    module: nn.Module,
    samples: Sequence[Sample],
    device: torch.device,
    tolerance: Tolerance,
    *,
    shapes_to_check: int = SELF_CHECK_SHAPES,
    repeats: int = SELF_CHECK_REPEATS,
    range_ends: Sequence[Sample] = (),
    known_first_calls: Mapping[tuple[tuple[int, ...], ...], float] | None = None,
) -> SelfCheckReport:
    """Compare up to ``shapes_to_check`` differently shaped recorded calls, then the ``range_ends`` calls.

    Each shape is called ``repeats`` times, because some runtimes change kernels after the first call at a
    shape. A range-end call that eager PyTorch itself cannot run (out of memory, a constraint between inputs
    the tiling broke) is skipped. ``tolerance`` is what counts as a match (the plan's). ``known_first_calls``: per
    call's shapes, what a first call there costs when its kernels are not compiled yet (``early_kernels`` measured
    it on a twin of the engines): recorded for the warm-up instead of this check's shortened first call.
    """
    first_calls: list[float] = []
    checked: list[list[tuple[int, ...]]] = []
    warm_calls: list[WarmCall] = []
    for is_recorded, sample in self_check_calls(samples, shapes_to_check, range_ends):
        outcome = _compare_one(engines, module, sample, device, tolerance, is_recorded, repeats, first_calls)
        if isinstance(outcome, Mismatch):
            return SelfCheckReport(checked, round(sum(first_calls), 3), outcome, warm_calls)
        if outcome:
            shapes = tensor_shapes(sample)
            checked.append(list(shapes))
            warm = WarmCall.of(sample, (known_first_calls or {}).get(shapes, first_calls[-1]))
            if warm is not None:
                warm_calls.append(warm)
    return SelfCheckReport(checked, round(sum(first_calls), 3), None, warm_calls)


def _compare_one(
    engines: Callable[..., Any],
    module: nn.Module,
    sample: Sample,
    device: torch.device,
    tolerance: Tolerance,
    is_recorded: bool,
    repeats: int,
    first_calls: list[float],
) -> Mismatch | bool:
    """Run one call through eager and ``repeats`` times through the engines; append the first call's seconds.

    Returns the mismatch, else whether the call was compared (False: a range-end call eager cannot run).
    """
    shapes = tensor_shapes(sample)
    args, kwargs = move_tensors_to_device(sample, device)
    with torch.no_grad():
        try:
            expected = module(*args, **kwargs)
        except Exception as error:
            if is_recorded:
                raise
            logger.warning(
                "Self-check: the call at the end of the built range, shapes %s, is not compared: eager "
                "PyTorch cannot run it (%s: %s).",
                list(shapes),
                type(error).__name__,
                error,
            )
            return False
        if not is_recorded and device.type == "cuda":
            # Eager's activations at a range end can be large, and PyTorch's allocator keeps them cached. TensorRT-RTX
            # compiles kernels for the new shape at the engines' first call there, with memory of its own: hand the
            # cached blocks back first, so that the engines are judged with the memory a caller would give them.
            torch.cuda.empty_cache()
        for attempt in range(1, repeats + 1):
            start = time.perf_counter()
            try:
                actual = engines(*args, **kwargs)
            except Exception as error:  # the saved artifact does not run on this input
                problem = f"shapes {list(shapes)}, call {attempt}: it raised {type(error).__name__}: {error}"
                return Mismatch(is_recorded, problem, shapes)
            problem = output_mismatch(actual, expected, tolerance)  # reads the outputs: waits for the GPU
            if attempt == 1:
                first_calls.append(time.perf_counter() - start)
            if problem is not None:
                return Mismatch(is_recorded, f"shapes {list(shapes)}, call {attempt} of {repeats}: {problem}", shapes)
    return True


def check_against_eager(
    activation: Activation,
    guard: ShapeGuard,
    plan: BuildPlan,
    module: nn.Module,
    samples: Sequence[Sample],
    device: torch.device,
    check_shapes: bool,
    known_first_calls: Mapping[tuple[tuple[int, ...], ...], float] | None = None,
) -> SelfCheckReport:
    """The full self-check of a fresh build: recorded calls, then the calls at both ends of ``guard``'s ranges.

    ``known_first_calls`` as for :func:`compare_with_eager`.
    """
    engines = engines_of(activation, check_shapes)
    return compare_with_eager(
        engines,
        module,
        samples,
        device,
        plan.tolerance,
        range_ends=checked_range_ends(guard, samples[0]),
        known_first_calls=known_first_calls,
    )


def checked_range_ends(guard: ShapeGuard, sample: Sample, warn: bool = True) -> list[Sample]:
    """:func:`range_end_calls`, or none where the resizing does not handle the inputs' layout (with a warning)."""
    try:
        return range_end_calls(guard, sample)
    except Exception as error:  # an input layout the resizing does not handle: check the recorded calls only
        if warn:
            logger.warning("Self-check: no calls at the range ends (%s: %s).", type(error).__name__, error)
        return []


def checked_calls(guard: ShapeGuard, samples: Sequence[Sample]) -> list[tuple[bool, Sample]]:
    """The calls :func:`check_against_eager` makes, as ``(recorded?, call)`` (``validation.self_check_calls``)."""
    return self_check_calls(samples, SELF_CHECK_SHAPES, checked_range_ends(guard, samples[0], warn=False))


def refuse_mismatch(
    mismatch: Mismatch | None, plan: BuildPlan, coverage: Coverage, searched: Sequence[str] = ()
) -> None:
    """Raise the :class:`BuildError` for a self-check mismatch (nothing when there was none).

    ``searched``: what a search for a smaller range tried, one line per candidate (``RangeSearchChecks.tried``), when
    one ran and found nothing.
    """
    if mismatch is None:
        return
    where = "a recorded input" if mismatch.recorded else "an input at the end of the built shape range"
    quantized = plan.precision.quantized
    hint = (
        hints.for_quantized_mismatch(quantized)
        if quantized is not None
        else hints.for_mismatch(mismatch.recorded, plan.frontend.name, coverage)
    )
    search = (
        f" A search for a smaller range found none the engines reproduce eager PyTorch at; it tried: "
        f"{'; '.join(searched)}."
        if searched
        else ""
    )
    raise BuildError(
        f"The engines built with {plan.describe()} do not reproduce eager PyTorch on {where} "
        f"({mismatch.problem}).{search} {hint}"
    )


def range_end_calls(guard: ShapeGuard, sample: Sample) -> list[Sample]:
    """``sample`` resized to the ranges' smallest and to their largest shapes: the calls at the range ends.

    Each tensor is tiled along every axis that must grow (its recorded values repeat, so rows stay real data
    and differ from one another wherever the recording had several) and cut where it must shrink; plain
    values are kept. Empty when a tensor cannot be resized (an axis of size 0 that must grow).
    """
    ends = []
    for end in ("min_shape", "max_shape"):
        call = resized_call(guard, sample, [getattr(spec, end) for spec in guard.ranges])
        if call is None:
            return []
        ends.append(call)
    return ends


def resized_call(guard: ShapeGuard, sample: Sample, shapes: Sequence[tuple[int, ...]]) -> Sample | None:
    """``sample`` with each of ``guard``'s tensors tiled or cut to ``shapes`` (one per range); None if one cannot be."""
    # Fresh containers (the locators write into them), the recorded tensors shared rather than copied.
    args, kwargs = copy.deepcopy(sample, {id(t): t for t in tree_leaves(sample) if isinstance(t, torch.Tensor)})
    bound = guard.call_signature.bind(*args, **kwargs)
    arguments = bound.arguments
    for spec, shape in zip(guard.ranges, shapes, strict=True):
        resized = _tile_to(spec.locator.get_value(arguments), shape)
        if resized is None:
            return None
        arguments = spec.locator.set_value(arguments, resized)
    bound.arguments = arguments
    return bound.args, bound.kwargs


@dataclass
class RangeSearchChecks:
    """The range search's test (``passes``): the engines at a candidate range's top against eager PyTorch.

    The engines run without the guard (they were built for more than the candidate range). A call eager PyTorch
    cannot run there, or that cannot be tiled, counts as not reproduced: the range must be one that was verified.
    Every candidate after a failure, the top's included, is judged on engines loaded afresh by ``reload``: a
    TensorRT-RTX engine that failed a call at a large shape, whether it raised or returned other numbers, may give
    wrong numbers at every shape it had not run before (the fp32 token encoder at batch 262144 on an H100,
    2026-12-07), which would make every smaller candidate look wrong. ``tried`` says what each candidate gave, for
    the refusal when none passes.
    """

    reload: Callable[[], Callable[..., Any]]
    guard: ShapeGuard
    module: nn.Module
    sample: Sample
    device: torch.device
    tolerance: Tolerance
    tried: list[str] = field(default_factory=list)
    engines: Callable[..., Any] | None = field(default=None, init=False)  # None: ``reload`` before the next candidate

    def passes(self, candidate: list[InputRange]) -> bool:
        """Whether the engines reproduce eager PyTorch on the sample tiled to ``candidate``'s top."""
        call = resized_call(self.guard, self.sample, [spec.max_shape for spec in candidate])
        if call is None:
            self.tried.append(f"{describe_all(candidate)}: the recorded call cannot be resized to it")
            return False
        if self.engines is None:
            self.engines = self.reload()
        outcome = _compare_one(self.engines, self.module, call, self.device, self.tolerance, False, 1, [])
        if outcome is not True:
            self.engines = None
        verdict = "pass" if outcome is True else "not compared" if outcome is False else "fail"
        # The problem starts with the shapes and call number, said once here already.
        why = outcome.problem.split(": ", 1)[-1][:240] if isinstance(outcome, Mismatch) else ""
        detail = f"{verdict} ({why})" if why else verdict
        self.tried.append(f"shapes {list(tensor_shapes(call))}: {detail}")
        logger.info("Range search: %s", self.tried[-1])
        return outcome is True


def _tile_to(tensor: Any, shape: tuple[int, ...]) -> torch.Tensor | None:
    """``tensor`` repeated along the axes that must grow and cut to ``shape``; None where it cannot be."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != len(shape):
        return None
    for axis, size in enumerate(shape):
        have = tensor.shape[axis]
        if have < size:
            if have == 0:
                return None
            repeats = [1] * tensor.dim()
            repeats[axis] = -(-size // have)
            tensor = tensor.repeat(repeats)
        tensor = tensor.narrow(axis, 0, size)
    return tensor
