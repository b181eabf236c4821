"""CPU: the largest range engines pass (``pipeline.range_search``) and the range arithmetic it uses (``ranges``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from aitune_trt_aot.pipeline.range_search import largest_building, largest_passing
from aitune_trt_aot.ranges import InputRange, capped, clamped_to_proof


def _range(high: int, opt: int = 8, name: str = "x") -> InputRange:
    return InputRange(None, name, (1, 16), (opt, 16), (high, 16), torch.float32)


def _search(
    limit: int, top: int = 65536, floor: int = 8, search: Callable = largest_passing
) -> tuple[int | None, list[int]]:
    """``search`` over a range 1..``top`` recorded up to ``floor``, where tops up to ``limit`` pass; (found, tried)."""
    tried: list[int] = []

    def passes(candidate: list[InputRange]) -> bool:
        tried.append(candidate[0].max_shape[0])
        return candidate[0].max_shape[0] <= limit

    found = search([_range(top)], {(0, 0): floor}, passes)
    return (None if found is None else found[0].max_shape[0]), tried


def test_halves_until_a_top_passes_then_bisects() -> None:
    found, tried = _search(limit=40000)
    assert tried == [32768, 49152, 40960, 36864]  # halve once, then three bisection steps
    assert found == 36864 and found <= 40000 and found >= 40000 * 7 // 8


def test_the_largest_recorded_size_is_the_floor() -> None:
    found, tried = _search(limit=8, top=1024)
    assert found == 8 and tried[-1] in (8, 9) and min(tried) == 8
    assert _search(limit=3, top=1024)[0] is None  # not even the recorded size passes: nothing useful


def test_no_raised_axis_means_no_search() -> None:
    assert largest_passing([_range(64)], {}, lambda candidate: True) is None
    assert largest_building([_range(64)], {}, lambda candidate: True) is None


def _build_search(limit: int) -> tuple[int | None, list[int]]:
    return _search(limit, top=65535, search=largest_building)


def test_a_range_that_does_not_build_is_halved_after_the_floor_builds() -> None:
    found, tried = _build_search(limit=40000)
    assert (found, tried) == (32767, [8, 32767]), "the floor first, then halving: no bisection (each try compiles)"
    found, tried = _build_search(limit=20)
    assert (found, tried[:3], tried[-1]) == (15, [8, 32767, 16383], 15)
    assert _build_search(limit=8)[0] == 8, "only the recorded sizes build"


def test_a_failure_the_floor_shares_is_not_the_ranges() -> None:
    assert _build_search(limit=4) == (None, [8])


def test_capped_cuts_only_raised_axes_and_keeps_opt_inside() -> None:
    (cut,) = capped([_range(65536, opt=65536)], {(0, 0): 8}, 100)
    assert (cut.max_shape, cut.opt_shape, cut.min_shape) == ((100, 16), (100, 16), (1, 16))
    (kept,) = capped([_range(65536)], {(0, 0): 8}, 2)
    assert kept.max_shape == (8, 16), "never below the largest recorded size"


def test_clamped_to_proof_cuts_to_what_export_proved() -> None:
    wanted = [_range(524288, opt=524288)]
    proof = [InputRange(None, "tensor 0", (2, 16), None, (65535, 16), torch.float32)]
    (clamped,) = clamped_to_proof(wanted, proof)
    assert (clamped.min_shape, clamped.max_shape, clamped.opt_shape) == ((1, 16), (65535, 16), (65535, 16))
    unbounded = [InputRange(None, "tensor 0", (2, 16), None, (None, 16), torch.float32)]
    assert clamped_to_proof(wanted, unbounded) == wanted
    assert clamped_to_proof(wanted, proof + proof) == wanted, "a proof that does not line up changes nothing"
