"""Range-search steps: a raised range gets the largest top that TensorRT builds and the engines pass the check at.

AITune's ``OneBackendStrategy`` raises a graph's batch range before building (its find-max-batch-size step picks
the batch size at which eager PyTorch had its best throughput: 65536 for a small token encoder, issue 29), and
gives backends no way to state a maximum of their own. TensorRT may not build engines for such a range, and engines
built for it can be wrong, or fail, near its top while right everywhere below. Rather than refuse the whole build:

- :func:`largest_building`: when the compile fails, the raised axes are halved until it succeeds, each try a
  compile, once the largest recorded sizes alone were shown to build (otherwise the failure is not the range's);
- :func:`largest_passing`: when the engines fail the check at the top of the range, it halves the raised axes until
  a call passes, then bisects between the last failing and the first passing size for a few steps. The build is
  then made again for that range, so that the engines, the checkpoint's guard (calls above get ``InputShapeError``
  naming the range) and a ``.pt2`` package's recorded ranges all agree, and checked again in full.

Only axes whose top lies above every recorded call's size are searched ("raised" axes): the recorded sizes were
checked already, and are never cut. Nor is any axis cut below 2: ``torch.export`` gives a dynamic axis the range
[2, ...] (it specialises sizes 0 and 1), and Torch-TensorRT refuses an input range whose top lies below the exported
one. AITune keeps one recorded call per graph by default, often the batch-1 call: a floor of 1 made the first try
(the recorded sizes alone) fail for that reason, and the whole search with it (the fp32 token encoder on an H100,
2026-12-07).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aitune.torch.module.graph_spec import GraphSpec

from aitune_trt_aot.compiled import Sample
from aitune_trt_aot.ranges import InputRange, capped, describe_all
from aitune_trt_aot.shapes import ShapeGuard

logger = logging.getLogger(__name__)

REFINE_STEPS = 3  # bisection steps after halving: the range found is within 1/8 of the largest that passes
RECORDED_CALLS_READ = 16  # recorded calls read to find the sizes already checked
SMALLEST_DYNAMIC_TOP = 2  # torch.export's smallest upper bound for a dynamic axis


def raised_axes(guard: ShapeGuard, recorded: Iterable[Sample]) -> dict[tuple[int, int], int]:
    """The axes whose top lies above every recorded call's size: (range index, axis) -> the smallest top to cut to.

    That is the largest recorded size, and at least :data:`SMALLEST_DYNAMIC_TOP`.
    """
    largest: dict[tuple[int, int], int] = {}
    for number, (args, kwargs) in enumerate(recorded):
        if number == RECORDED_CALLS_READ:
            break
        arguments = guard.call_signature.bind(*args, **kwargs).arguments
        for index, spec in enumerate(guard.ranges):
            tensor = spec.locator.get_value(arguments)
            for axis, size in enumerate(getattr(tensor, "shape", ())):
                largest[index, axis] = max(largest.get((index, axis), SMALLEST_DYNAMIC_TOP), int(size))
    return {
        (index, axis): size
        for (index, axis), size in largest.items()
        if axis < len(guard.ranges[index].max_shape)
        and guard.ranges[index].max_shape[axis] is not None
        and guard.ranges[index].max_shape[axis] > size
    }


def largest_passing(
    ranges: list[InputRange],
    raised: dict[tuple[int, int], int],
    passes: Callable[[list[InputRange]], bool],
    refine_steps: int = REFINE_STEPS,
) -> list[InputRange] | None:
    """The ranges with the raised axes cut to the largest top at which ``passes`` holds.

    None if not even the largest recorded sizes, tiled, pass: nothing useful can be built. ``passes(candidate)``
    runs the engines at the top of ``candidate`` against eager PyTorch. The top of the requested ``ranges`` is known
    to fail and is not tried again.
    """
    if not raised:
        return None
    failing = max(ranges[index].max_shape[axis] for index, axis in raised)  # type: ignore[type-var]
    floor = max(raised.values())
    passing = None
    level = max(floor, failing // 2)
    while passing is None:
        if passes(capped(ranges, raised, level)):
            passing = level
        elif level <= floor:
            return None
        else:
            failing, level = level, max(floor, level // 2)
    for _ in range(refine_steps):
        middle = (passing + failing) // 2
        if middle in (passing, failing):
            break
        if passes(capped(ranges, raised, middle)):
            passing = middle
        else:
            failing = middle
    found = capped(ranges, raised, passing)
    logger.warning(
        "The engines do not reproduce eager PyTorch at the top of the requested range (%s); the largest range they "
        "do reproduce it on is %s. Building for that range; calls above it raise InputShapeError.",
        describe_all(ranges),
        describe_all(found),
    )
    return found


def largest_building(
    ranges: list[InputRange],
    raised: dict[tuple[int, int], int],
    builds: Callable[[list[InputRange]], bool],
) -> list[InputRange] | None:
    """The ranges with the raised axes cut to the largest top, halving from the requested one, that ``builds``.

    ``builds(candidate)`` compiles for ``candidate``; the requested ``ranges`` are known not to. The largest recorded
    sizes are tried first: if not even they build, the failure is not the range's, and None is returned at the cost
    of one compile. No bisection follows the halving: each step is a whole compile, and the range found is at least
    half the largest one that builds.
    """
    if not raised:
        return None
    floor = max(raised.values())
    if not builds(capped(ranges, raised, floor)):
        return None
    level = max(floor, max(ranges[index].max_shape[axis] for index, axis in raised) // 2)  # type: ignore[type-var]
    while level > floor and not builds(capped(ranges, raised, level)):
        level = max(floor, level // 2)
    found = capped(ranges, raised, level)
    logger.warning(
        "TensorRT could not build engines for the requested range (%s); the largest range it builds is %s. Building "
        "for that range; calls above it raise InputShapeError.",
        describe_all(ranges),
        describe_all(found),
    )
    return found


def narrow_graph_spec(graph_spec: GraphSpec, ranges: list[InputRange]) -> bool:
    """Lower the batch sizes AITune recorded for ``graph_spec`` to the tops of ``ranges`` (what was built).

    After a backend builds, AITune checks it at the graph's largest recorded shapes ("Dynamic shape correctness
    check ... with max input shapes") and profiles it up to the graph's largest batch: calls the narrowed engines
    refuse. AITune 0.6 can only raise a graph's batch range (``GraphSpec.update_max_batch_size``), so the batch axes
    of its tensor specs are lowered here (``stack.py`` lists this). Returns whether anything was lowered.
    """
    built = {spec.locator.path: spec for spec in ranges if spec.locator is not None}
    lowered = False
    for locator, tensor_spec in graph_spec.input_spec.tensor_data:
        spec = built.get(locator.path)
        if spec is None:
            continue
        for axis in tensor_spec.get_batch_axis_multipliers():
            high = spec.max_shape[axis] if axis < len(spec.max_shape) else None
            if high is not None and tensor_spec.max_shape[axis] > high:
                tensor_spec.max_shape[axis] = high
                lowered = True
    if lowered:
        logger.info(
            "AITune's batch range lowered to the built one (largest batch %d).", graph_spec.get_max_batch_size()
        )
    return lowered
