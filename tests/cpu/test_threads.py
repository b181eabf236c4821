"""CPU: an ``ait.Module`` called from 4 threads at once; ``serialize_calls`` makes every call reach the backend."""

from __future__ import annotations

from typing import Any

import aitune.torch as ait
import torch

from aitune_trt_aot import serialize_calls
from tests.support.threads import worst_errors_from_threads
from tests.support.tuning import tuned_eager_module

THREADS, CALLS = 4, 300


def _tuned_with_counted_backend(name: str) -> tuple[ait.Module, torch.nn.Module, list[int]]:
    """A Linear tuned on the CPU with AITune's eager backend, whose ``infer`` counts the calls reaching it."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 4)
    reference = torch.nn.Linear(4, 4)
    reference.load_state_dict(linear.state_dict())
    module = tuned_eager_module(linear, name)
    (backend,) = module._self_wrapper.backends.values()
    served = [0]
    infer = backend.infer

    def counting_infer(*args: Any, **kwargs: Any) -> Any:
        served[0] += 1
        return infer(*args, **kwargs)

    backend.infer = counting_infer
    return module, reference, served


def _call_from_threads(call: Any, reference: torch.nn.Module) -> float:
    def make_input(thread: int, index: int) -> torch.Tensor:
        return torch.randn(1 + (index + thread) % 2, 4)

    return max(worst_errors_from_threads(call, reference, make_input, THREADS, CALLS))


def test_serialized_calls_from_four_threads_all_reach_the_backend() -> None:
    """Without the lock AITune lets racing calls bypass the backend (counted, printed); with it none do."""
    module, reference, served = _tuned_with_counted_backend("threads-cpu")
    _call_from_threads(module, reference)
    print(f"\n[ait.Module from {THREADS} threads] {served[0]} of {THREADS * CALLS} calls reached the backend")
    served[0] = 0
    worst = _call_from_threads(serialize_calls(module), reference)
    print(f"[serialize_calls from {THREADS} threads] {served[0]} of {THREADS * CALLS} calls reached the backend")
    assert served[0] == THREADS * CALLS
    assert worst <= 1e-6
