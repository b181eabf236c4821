"""CPU: the early-kernels step's parts that need no engines (``pipeline.early_kernels``).

What runs on the GPU (a twin of real engines compiling kernels into the cache the loaded package shares) is
``tests/gpu/test_pt2_gpu.py``'s; here: which calls the twin makes, when it may start, what the self-check records,
and that nothing runs where the step does not apply.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from aitune_trt_aot.pipeline.early_kernels import EarlyKernels, KernelsMeanwhile, first_calls
from aitune_trt_aot.pipeline.self_check import checked_calls, compare_with_eager
from aitune_trt_aot.pt2.object_reuse import reused_objects
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.validation import MaxAbsTolerance, tensor_shapes
from tests.support.models import TwoInputs
from tests.support.recording import record, two_inputs_call


def _guarded() -> tuple[TwoInputs, list, ShapeGuard]:
    torch.manual_seed(0)
    module = TwoInputs().eval()
    calls = [two_inputs_call(1), two_inputs_call(16), two_inputs_call(3)]
    return module, calls, ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)


def test_the_twin_makes_the_self_checks_calls_once_each_through_the_guard() -> None:
    """One call per checked shape, in the self-check's order, prepared by the guard; each one's seconds by shapes."""
    module, calls, guard = _guarded()
    seen: list[tuple] = []

    def runner(*args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        seen.append(tensor_shapes((args, kwargs)))
        return module(*args, **kwargs)

    planned = [call for _, call in checked_calls(guard, calls)]
    seconds = first_calls(runner, planned, guard, torch.device("cpu"))
    assert list(seconds) == [tensor_shapes(call) for call in planned] == seen
    assert [shapes[0][0] for shapes in seconds] == [1, 16, 3], "recorded 1 and 16, then 3; the range ends add none"
    assert all(value >= 0 for value in seconds.values())


def test_the_self_check_records_the_twins_first_calls_for_the_warm_up() -> None:
    """Where the twin measured a shape's first call, the warm-up's record takes that, not the check's own."""
    module, calls, guard = _guarded()
    known = {tensor_shapes(calls[1]): 1.25}
    report = compare_with_eager(module, module, calls, torch.device("cpu"), MaxAbsTolerance(), known_first_calls=known)
    assert report.mismatch is None
    recorded = {call.shapes()[0][0]: call.seconds for call in report.warm_calls}
    assert recorded[16] == 1.25 and recorded[1] != 1.25 and recorded[3] != 1.25
    assert report.first_call_seconds < 1.25, "the check's own first calls are what it measured"


def test_a_step_never_given_the_go_is_cancelled_and_runs_nothing() -> None:
    """A save that ends (or fails) before its C++ commands: the waiting thread is released, and does nothing."""
    step = KernelsMeanwhile()
    ran: list[bool] = []

    def body() -> None:
        step.go.wait()
        ran.append(not step.cancelled)

    step.thread = threading.Thread(target=body)
    step.thread.start()
    step.wait()
    assert step.cancelled and ran == [False] and step.thread is None and step.found is None


def test_a_step_given_the_go_runs_and_is_waited_for() -> None:
    """After :meth:`native_compile_started`, the thread runs to its end before :meth:`wait` returns."""
    step = KernelsMeanwhile()

    def body() -> None:
        step.go.wait()
        step.found = EarlyKernels(cache=None, first_calls={((2, 4),): 0.5}, seconds=0.6)

    step.thread = threading.Thread(target=body)
    step.thread.start()
    step.native_compile_started()
    step.wait()
    assert not step.cancelled and step.found is not None
    assert step.found.report() == {"shapes": [[[2, 4]]], "first_call_seconds": 0.5, "seconds": 0.6}


def test_the_package_compile_announces_its_first_cpp_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``before_commands`` runs once, before the first C++ command: Inductor's code generation (tracing) is over."""
    from torch._inductor import cpp_builder

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    events: list[str] = []
    run = cpp_builder._run_compile_cmd

    def recorded(cmd_line: str, cwd: str) -> None:
        events.append("command")
        run(cmd_line, cwd)

    monkeypatch.setattr(cpp_builder, "_run_compile_cmd", recorded)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    program = torch.export.export(model, (torch.randn(2, 8),))
    with reused_objects(before_commands=lambda: events.append("go")):
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp_path / "m.pt2"), inductor_configs={"compile_threads": 1}
        )
    assert events[0] == "go" and events.count("go") == 1 and events.count("command") >= 2, events


def test_the_step_applies_to_slow_saves_on_rtx_gpus_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``.pt2`` builds on a TensorRT-RTX stack and a GPU; not ``.ait`` ones, CPU builds, or with the switch at 0."""
    from types import SimpleNamespace

    from aitune_trt_aot.formats import FORMATS
    from aitune_trt_aot.pipeline.early_kernels import SWITCH_ENV, applies

    def plan(name: str, rtx: bool = True) -> Any:
        return SimpleNamespace(artifact_format=FORMATS[name], stack=SimpleNamespace(tensorrt_rtx=rtx))

    gpu, cpu = SimpleNamespace(device=torch.device("cuda", 0)), SimpleNamespace(device=torch.device("cpu"))
    assert applies(plan("aot_inductor"), gpu)
    assert not applies(plan("exported_program"), gpu) and not applies(plan("aot_inductor", rtx=False), gpu)
    assert not applies(plan("aot_inductor"), cpu)
    monkeypatch.setenv(SWITCH_ENV, "0")
    assert not applies(plan("aot_inductor"), gpu)


def test_the_twins_copy_shares_the_weights_of_the_parts_pytorch_runs() -> None:
    """Modules are copied, parameters and buffers shared: the twin costs no memory for them."""
    from aitune_trt_aot.pipeline.early_kernels import copy_sharing_weights

    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)).eval()
    twin = copy_sharing_weights(module)
    assert twin is not module and twin[0] is not module[0]
    assert twin[0].weight is module[0].weight and twin[1].running_mean is module[1].running_mean
    x = torch.randn(3, 4)
    assert torch.equal(twin(x), module(x))
