"""CPU: which calls the build self-check compares with eager (recorded calls, then the range ends)."""

from __future__ import annotations

import torch

from aitune_trt_aot.pipeline.self_check import range_end_calls
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.validation import MaxAbsTolerance, output_mismatch, self_check_calls, tensor_shapes
from tests.support.models import ListInput, TwoInputs, TwoTensors
from tests.support.recording import record, two_inputs_call


def _call(batch: int, scale: float = 0.5) -> tuple[tuple, dict]:
    return (torch.zeros(batch, 4), torch.zeros(batch, 2)), {"bias": torch.zeros(batch, 3), "scale": scale}


def test_tensor_shapes_lists_every_tensor_in_argument_order() -> None:
    """Positional tensors, then keyword tensors; plain values are not shapes."""
    assert tensor_shapes(_call(5)) == ((5, 4), (5, 2), (5, 3))


def test_one_call_per_shape_recorded_first_then_the_range_ends() -> None:
    """Repeated shapes are compared once; range ends come after the recorded calls and only at new shapes."""
    recorded = [_call(1), _call(1), _call(4), _call(4)]
    ends = [_call(1), _call(16)]  # the smallest end is a recorded shape already
    chosen = self_check_calls(recorded, shapes_to_check=3, range_ends=ends)
    assert [(is_recorded, tensor_shapes(call)[0][0]) for is_recorded, call in chosen] == [
        (True, 1),
        (True, 4),
        (False, 16),
    ]
    assert chosen[0][1] is recorded[0] and chosen[2][1] is ends[1]


def test_recorded_calls_are_capped_but_the_range_ends_are_not() -> None:
    """The cap counts recorded shapes only (the build cache's one-call check uses 1 and no range ends)."""
    recorded = [_call(b) for b in (1, 2, 3, 4)]
    chosen = self_check_calls(recorded, shapes_to_check=2, range_ends=[_call(1), _call(32)])
    assert [tensor_shapes(call)[0][0] for _, call in chosen] == [1, 2, 32]
    assert [tensor_shapes(call)[0][0] for _, call in self_check_calls(recorded, shapes_to_check=1)] == [1]


def test_the_recorded_calls_are_not_read_past_the_cap() -> None:
    """AITune's sample store may load each sample from disk: stop reading once enough shapes are found."""
    read = []

    def samples():
        for batch in (1, 2, 3, 4):
            read.append(batch)
            yield _call(batch)

    self_check_calls(samples(), shapes_to_check=2)
    assert read == [1, 2]


def test_a_range_of_one_size_adds_one_call() -> None:
    """When both ends have the same shapes (and no recorded call has them), one range-end call is made."""
    chosen = self_check_calls([_call(2)], shapes_to_check=3, range_ends=[_call(8), _call(8)])
    assert [(r, tensor_shapes(c)[0][0]) for r, c in chosen] == [(True, 2), (False, 8)]


def test_mismatch_is_scaled_by_the_eager_output() -> None:
    """The tolerance is relative to the largest eager value (at least 1); NaN is refused whatever the tolerance.

    So large outputs are not refused for rounding.
    """
    eager = torch.full((4,), 1000.0)
    fp32 = MaxAbsTolerance()
    assert output_mismatch(eager + 5.0, eager, fp32) is None  # 5e-3 of the scale
    assert "differs from eager" in output_mismatch(eager + 20.0, eager, fp32)
    assert "NaN" in output_mismatch(torch.full((4,), float("nan")), eager, fp32)


# --- range_end_calls: the calls the self-check makes at the ends of the built range ------------------------------


def test_range_ends_tile_the_recorded_call_and_keep_its_constants() -> None:
    """Min and max calls: each range's tensor cut or tiled to its end; plain values kept; the recording untouched.

    Tiled rows repeat the recorded rows in order, so the max call holds real, differing rows.
    """
    torch.manual_seed(0)
    module = TwoInputs().eval()
    calls = [two_inputs_call(1), two_inputs_call(16), two_inputs_call(3)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)  # batch 1..16
    (x, y), kwargs = calls[2]
    (low, high) = range_end_calls(guard, calls[2])
    assert [t.shape[0] for t in (*low[0], low[1]["bias"])] == [1, 1, 1]
    assert [t.shape[0] for t in (*high[0], high[1]["bias"])] == [16, 16, 16]
    assert low[1]["scale"] == high[1]["scale"] == 0.5
    assert torch.equal(high[0][0][:3], x) and torch.equal(high[0][0][3:6], x) and torch.equal(high[0][0][15], x[0])
    assert torch.equal(high[0][1][3:6], y) and torch.equal(low[1]["bias"], kwargs["bias"][:1])
    assert calls[2][0][0] is x and kwargs["bias"].shape[0] == 3


def test_range_ends_of_nested_inputs_leave_the_recorded_containers_alone() -> None:
    """Tensors inside a list are resized in a new list; the recorded list still holds the recorded tensors."""
    module = ListInput()
    calls = [(([torch.randn(b, 8), torch.randn(b, 8)],), {}) for b in (1, 16, 3)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    recorded = calls[2][0][0]
    before = list(recorded)
    (low, high) = range_end_calls(guard, calls[2])
    assert [t.shape for t in low[0][0]] == [torch.Size([1, 8])] * 2
    assert [t.shape for t in high[0][0]] == [torch.Size([16, 8])] * 2
    assert all(now is then for now, then in zip(recorded, before, strict=True))


def test_range_ends_need_data_to_tile() -> None:
    """A tensor with no rows cannot be tiled up to the range's end: no range-end calls."""
    module = TwoTensors()
    calls = [((torch.randn(b, 8), torch.randn(b, 8)), {}) for b in (1, 16)]
    guard = ShapeGuard.from_graph_spec(record(module, calls), calls[0], module.forward)
    assert range_end_calls(guard, ((torch.randn(0, 8), torch.randn(0, 8)), {})) == []
