"""CPU: input ranges from AITune's graph spec, the per-call ``ShapeGuard`` and built-in constants."""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch
from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.locator import Locator
from torch import nn
from torch.export import Dim

from aitune_trt_aot import InputShapeError
from aitune_trt_aot.ranges import InputRange, graph_spec_ranges
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.wrappers import bind_constants
from tests.support.models import ListInput, TwoInputs, TwoTensors
from tests.support.recording import record, two_inputs_call

Call = tuple[tuple, dict]


@pytest.fixture
def guard() -> ShapeGuard:
    """The guard for TwoInputs recorded at batch sizes 1 and 16 with scale=0.5 (built from the batch-1 call)."""
    torch.manual_seed(0)
    module = TwoInputs().eval()
    calls = [two_inputs_call(1), two_inputs_call(16)]
    return ShapeGuard.from_graph_spec(record(module, calls), calls[0])


def test_ranges_come_from_the_recorded_shapes(guard: ShapeGuard) -> None:
    """Each tensor input gets a range: batch 1..16, optimised for the largest batch, its recorded dtype."""
    assert [(r.name, r.min_shape, r.opt_shape, r.max_shape, r.dtype) for r in guard.ranges] == [
        ("x", (1, 32), (16, 32), (16, 32), torch.float32),
        ("y", (1, 16), (16, 16), (16, 16), torch.float32),
        ("bias", (1, 64), (16, 64), (16, 64), torch.float32),
    ]
    assert guard.constants == {"scale": 0.5}


def test_calls_inside_the_range_pass(guard: ShapeGuard) -> None:
    """Batch sizes from the smallest to the largest built one are accepted, by position or keyword."""
    for batch in (1, 7, 16):
        guard.prepare(*two_inputs_call(batch))
    (x, y), kwargs = two_inputs_call(4)
    guard.prepare((), {"x": x, "y": y, **kwargs})


def test_prepare_drops_the_built_in_constants(guard: ShapeGuard) -> None:
    """The call handed to the engines keeps the tensors in their places and leaves out the constant ``scale``."""
    (x, y), kwargs = two_inputs_call(4)
    args, engine_kwargs = guard.prepare((x, y), kwargs)
    assert args == (x, y)
    assert engine_kwargs == {"bias": kwargs["bias"]}
    assert guard.strip_constants(((x, y), kwargs)) == ((x, y), {"bias": kwargs["bias"]})


def test_shape_checks_can_be_switched_off(guard: ShapeGuard) -> None:
    """With check_shapes=False out-of-range tensors pass through, but a changed constant is still refused."""
    guard.prepare(*two_inputs_call(17), check_shapes=False)
    with pytest.raises(InputShapeError, match="scale"):
        guard.prepare(*two_inputs_call(2, scale=2.0), check_shapes=False)


def test_batch_too_large_names_input_and_range(guard: ShapeGuard) -> None:
    """A batch above the built maximum names the input, the dimension and the range 1..16."""
    with pytest.raises(InputShapeError, match="Input 'x'") as error:
        guard.prepare(*two_inputs_call(17))
    message = str(error.value)
    assert "dimension 0 is 17, outside the built range 1..16" in message
    assert "The TensorRT engine takes 'x' as [1..16, 32] float32." in message


def test_wrong_rank_is_rejected(guard: ShapeGuard) -> None:
    """A tensor with an extra dimension is reported with both ranks."""
    (x, y), kwargs = two_inputs_call(2)
    with pytest.raises(InputShapeError, match=r"Input 'y' has 3 dimensions \(2, 16, 1\), the engine takes 2"):
        guard.prepare((x, y.unsqueeze(-1)), kwargs)


def test_wrong_dtype_is_rejected(guard: ShapeGuard) -> None:
    """A tensor of another dtype is reported with the dtype the engine was built for."""
    (x, y), kwargs = two_inputs_call(2)
    kwargs["bias"] = kwargs["bias"].double()
    expected = "Input 'bias' has dtype torch.float64, the engine was built for torch.float32"
    with pytest.raises(InputShapeError, match=expected):
        guard.prepare((x, y), kwargs)


def test_non_tensor_where_a_tensor_was_built_is_rejected(guard: ShapeGuard) -> None:
    """A plain number in place of a tensor input is reported as such."""
    (x, _), kwargs = two_inputs_call(2)
    with pytest.raises(InputShapeError, match="Input 'y' expected a tensor, got float"):
        guard.prepare((x, 3.0), kwargs)


def test_changed_constant_is_rejected(guard: ShapeGuard) -> None:
    """A plain-value argument is built into the engine; another value is refused, naming both values."""
    with pytest.raises(InputShapeError, match="Argument 'scale' is 2.0 in this call") as error:
        guard.prepare(*two_inputs_call(2, scale=2.0))
    assert "built with scale=0.5" in str(error.value)


def test_missing_optional_tensor_input_is_rejected() -> None:
    """An optional tensor that the engine was built with cannot be left out of a call."""

    class Masked(nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            return x if mask is None else x * mask

    module = Masked()
    calls = [((torch.randn(b, 4), torch.ones(b, 4)), {}) for b in (1, 8)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0])
    guard.prepare((torch.randn(3, 4), torch.ones(3, 4)), {})
    with pytest.raises(InputShapeError, match="Input 'mask' is missing from this call"):
        guard.prepare((torch.randn(3, 4),), {})


def test_missing_required_argument_fails_binding(guard: ShapeGuard) -> None:
    """A call that does not match the forward signature fails as Python's own call would."""
    (x, y), _ = two_inputs_call(2)
    with pytest.raises(TypeError, match="bias"):
        guard.prepare((x, y), {"scale": 0.5})


def _omitting_scale(batch: int) -> Call:
    """A TwoInputs call that leaves ``scale`` at its default (1.0)."""
    (x, y), kwargs = two_inputs_call(batch)
    return (x, y), {"bias": kwargs["bias"]}


def test_omitted_default_is_built_in_with_its_real_value() -> None:
    """Tuned without passing ``scale``, the captured module computes with scale=1.0, as eager PyTorch does."""
    torch.manual_seed(0)
    module = TwoInputs().eval()
    calls = [_omitting_scale(1), _omitting_scale(16)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    capture = bind_constants(module, guard.constants)
    args, kwargs = guard.strip_constants(calls[0])
    with torch.no_grad():
        torch.testing.assert_close(capture(*args, **kwargs), module(*calls[0][0], **calls[0][1]))


def test_explicit_default_value_is_accepted() -> None:
    """Tuned without ``scale`` (default 1.0), a call passing scale=1.0 explicitly is the same call."""
    torch.manual_seed(0)
    module = TwoInputs().eval()
    calls = [_omitting_scale(1), _omitting_scale(16)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    guard.prepare(*two_inputs_call(2, scale=1.0))


def test_constants_are_bound_for_capture() -> None:
    """bind_constants hides the constant arguments from forward's signature and supplies them to the module."""
    torch.manual_seed(0)
    module = TwoInputs().eval()
    assert bind_constants(module, {}) is module
    capture = bind_constants(module, {"scale": 0.5})
    assert list(inspect.signature(capture.forward).parameters) == ["x", "y", "bias"]
    (x, y), kwargs = two_inputs_call(3)
    with torch.no_grad():
        torch.testing.assert_close(capture(x, y, bias=kwargs["bias"]), module(x, y, **kwargs))
    batch = Dim("batch", min=1, max=16)
    exported = torch.export.export(
        capture, (x, y), {"bias": kwargs["bias"]}, dynamic_shapes={"x": {0: batch}, "y": {0: batch}, "bias": {0: batch}}
    )
    (x, y), kwargs = two_inputs_call(9)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x, y, bias=kwargs["bias"]), module(x, y, **kwargs))


def test_user_shape_definitions_take_precedence() -> None:
    """Explicit AITune dynamic shapes set the range and the optimisation shape."""
    from aitune.torch.dynamic_shapes import BatchDim

    torch.manual_seed(0)
    module = TwoInputs().eval()
    spec = record(module, [two_inputs_call(1), two_inputs_call(16)])
    spec.dynamic_shapes = {"x": (BatchDim("batch", min=1, max=64, opt=8), 32)}
    ranges = {r.name: r for r in graph_spec_ranges(spec)}
    assert (ranges["x"].min_shape, ranges["x"].opt_shape, ranges["x"].max_shape) == ((1, 32), (8, 32), (64, 32))
    assert ranges["y"].max_shape == (16, 16)


def test_to_dict_from_dict_round_trip(guard: ShapeGuard) -> None:
    """The guard survives to_dict, torch.save/torch.load and from_dict with the same ranges and behaviour."""
    buffer = io.BytesIO()
    torch.save({"shape_guard": guard.to_dict()}, buffer)
    buffer.seek(0)
    restored = ShapeGuard.from_dict(torch.load(buffer, weights_only=False)["shape_guard"])
    assert restored.to_dict() == guard.to_dict()
    assert restored.ranges == guard.ranges
    assert restored.signature == guard.signature
    assert restored.constants == {"scale": 0.5}
    restored.prepare(*two_inputs_call(16))
    with pytest.raises(InputShapeError, match="1..16"):
        restored.prepare(*two_inputs_call(17))


def test_guard_built_by_hand_from_locators() -> None:
    """An InputRange built from an AITune Locator checks the value the locator finds in a call."""
    signature = ForwardSignature.from_callable(TwoInputs().forward)
    sample = signature.normalize(*two_inputs_call(1)).arguments
    locator = next(loc for loc, _ in Locator.find_leaves(sample, only_tensors=True) if loc.display_path == "bias")
    bias = InputRange(locator, locator.display_path, (1, 64), (4, 64), (4, 64), torch.float32)
    guard = ShapeGuard(signature, [bias], constants={})
    guard.prepare(*two_inputs_call(4))
    with pytest.raises(InputShapeError, match="Input 'bias' has shape \\(5, 64\\)"):
        guard.prepare(*two_inputs_call(5))


def test_positional_calls_are_checked_without_binding() -> None:
    """Calls of one structure are bound once (a plan); later calls are refused exactly like the first."""
    module = TwoTensors()
    calls = [((torch.randn(b, 8), torch.randn(b, 8)), {}) for b in (1, 16)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    assert guard.prepare((x, y), {}) == ((x, y), {})
    assert guard._plans[(2, ())] is not None
    messages = []
    for args, kwargs in (((x, torch.randn(17, 8)), {}), ((x,), {"y": torch.randn(17, 8)})):
        with pytest.raises(InputShapeError) as error:
            guard.prepare(args, kwargs)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "Input 'y' has shape (17, 8): dimension 0 is 17, outside the built range 1..16" in messages[0]


def _outcome(prepare: Callable[..., Call], call: Call) -> tuple[str, Any]:
    """What ``prepare(*call)`` gave: the engines' call (by identity of its values) or the error's type and message."""
    try:
        args, kwargs = prepare(*call)
    except Exception as error:  # the comparison below is about which error, with which message
        return type(error).__name__, str(error)
    return "call", ([id(a) for a in args], [(k, id(v)) for k, v in kwargs.items()])


def test_planned_calls_match_binding_for_every_call_structure(guard: ShapeGuard) -> None:
    """With constants and keywords, the per-structure plan gives the engines the same call and the same errors."""
    x, y = torch.randn(4, 32), torch.randn(4, 16)
    bias, wide = torch.randn(4, 64), torch.randn(17, 64)
    calls = [
        ((x, y), {"bias": bias, "scale": 0.5}),
        ((x,), {"y": y, "bias": bias, "scale": 0.5}),
        ((), {"scale": 0.5, "bias": bias, "y": y, "x": x}),
        ((x, y, bias), {"scale": 0.5}),  # bias is keyword-only: does not bind, no plan
        ((x, y), {"bias": wide, "scale": 0.5}),  # outside the range
        ((x, y), {"bias": bias, "scale": 2.0}),  # another constant
        ((x, y), {"bias": bias, "scale": 1}),  # same value, another type
        ((x, y), {"scale": 0.5}),  # bias missing: does not bind, no plan
        ((x, y), {"bias": bias}),  # the constant omitted
    ]
    for call in calls:
        expected = _outcome(partial(guard._prepare_by_binding, check_shapes=True), call)
        for _ in range(2):  # the first call makes the plan, the second uses it
            assert _outcome(guard.prepare, call) == expected, call
        structure = (len(call[0]), tuple(call[1]))
        assert (guard._plans[structure] is None) == (expected[0] == "TypeError"), call


def test_plans_are_capped_per_guard(guard: ShapeGuard) -> None:
    """A caller with ever new call structures does not grow the guard without bound; such calls are still checked."""
    from aitune_trt_aot.shapes import MAX_CALL_PLANS

    guard._plans.update({(100 + i, ()): None for i in range(MAX_CALL_PLANS)})
    x, y = torch.randn(4, 32), torch.randn(4, 16)
    guard.prepare((x, y), {"bias": torch.randn(4, 64), "scale": 0.5})
    assert len(guard._plans) == MAX_CALL_PLANS
    with pytest.raises(InputShapeError, match="outside the built range"):
        guard.prepare((x, y), {"bias": torch.randn(17, 64), "scale": 0.5})


def test_nested_inputs_are_bound_on_every_call() -> None:
    """Tensors inside a list have no plan (their place is not a top-level argument); they are still checked."""
    module = ListInput()
    calls = [(([torch.randn(b, 8), torch.randn(b, 8)],), {}) for b in (1, 16)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    guard.prepare(([torch.randn(4, 8), torch.randn(4, 8)],), {})
    assert guard._plans[(1, ())] is None
    with pytest.raises(InputShapeError, match="dimension 0 is 17, outside the built range 1..16"):
        guard.prepare(([torch.randn(4, 8), torch.randn(17, 8)],), {})
