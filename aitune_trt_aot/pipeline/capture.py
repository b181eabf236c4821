"""Capture step: the module as the frontend captures it, and the guard every later call goes through.

Plain-valued arguments of the recorded call (numbers, strings, booleans, None) are built into the engines: the
guard records them, and the module is captured without them (``wrappers.bind_constants``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType

from aitune.torch.module.forward_signature import ForwardSignature
from torch import nn

from aitune_trt_aot.compiled import Sample
from aitune_trt_aot.frontends import CompileRequest
from aitune_trt_aot.pipeline.job import BuildJob
from aitune_trt_aot.plan import BuildPlan
from aitune_trt_aot.ranges import InputRange
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.wrappers import bind_constants


@dataclass(frozen=True)
class Capture:
    """What the compile step gets, and the guard the checkpoint keeps.

    Attributes:
        guard: The input ranges and built-in values every call is checked against.
        request: The frontend's input: the module without its built-in values, the plan's ranges and settings.

    """

    guard: ShapeGuard
    request: CompileRequest


def prepare_capture(
    plan: BuildPlan, job: BuildJob, module: nn.Module, sample: Sample, torch_tensorrt: ModuleType | None
) -> Capture:
    """The guard for ``sample`` (the call the engines are captured from) and the compile request under ``plan``."""
    guard = ShapeGuard.from_graph_spec(job.graph_spec, sample, module.forward, plan.ranges)
    capture_module = bind_constants(module, guard.constants)
    capture_spec = dataclasses.replace(
        job.graph_spec, forward_signature=ForwardSignature.from_callable(capture_module.forward)
    )
    request = CompileRequest(
        module=capture_module,
        graph_spec=capture_spec,
        ranges=plan.ranges,
        sample=guard.strip_constants(sample),
        device=job.device,
        settings=plan.precision.settings,
        options=plan.options,
        torch_tensorrt=torch_tensorrt,
    )
    return Capture(guard=guard, request=request)


def narrowed_capture(capture: Capture, ranges: list[InputRange]) -> Capture:
    """``capture`` for narrower ``ranges`` (the frontend built less than requested): its guard refuses the rest."""
    old = capture.guard
    guard = ShapeGuard(old.signature, list(ranges), old.constants, old.defaults)
    return Capture(guard=guard, request=dataclasses.replace(capture.request, ranges=list(ranges)))
