"""GPU: one tuned module called from 4 threads at once gives each caller its own correct result.

AITune's ``ait.Module`` itself is not thread-safe (aitune_trt_aot/threads.py says why; measured here: racing calls
fail with "Tensor on device meta"), so users call it through ``aitune_trt_aot.serialize_calls``. This backend
below AITune is called from the 4 threads directly, with no lock of ours around it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig, serialize_calls
from tests.support import tolerances
from tests.support.gpu import CallCounter, inputs_for, scale_of, the_backend, tune_case
from tests.support.threads import worst_errors_from_threads

THREADS = 4
CALLS_PER_THREAD = 24
BATCHES = (1, 16, 5, 12, 3, 8, 2, 13)


def _worst_error_from_threads(call: Callable, reference: torch.nn.Module) -> list[float]:
    def make_input(thread: int, index: int) -> torch.Tensor:
        (x,), _ = inputs_for("mlp", BATCHES[(index + 3 * thread) % len(BATCHES)], seed=1000 * thread + index)
        return x

    return worst_errors_from_threads(call, reference, make_input, THREADS, CALLS_PER_THREAD)


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["engines", "cuda-graphs"])
def test_four_threads_at_once_get_their_own_results(cuda_graphs: bool) -> None:
    """Through serialize_calls every call reaches the backend and matches eager; the backend alone, unlocked, too."""
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=cuda_graphs)))
    backend = the_backend(tuned)
    tolerance = tolerances.FP32 * scale_of(reference, "mlp", 16)
    counter = CallCounter(backend)

    through_aitune = _worst_error_from_threads(serialize_calls(tuned), reference)
    print(f"\n[mlp, {THREADS} threads via serialize_calls, cuda_graphs={cuda_graphs}] worst {through_aitune}")
    assert counter.calls == THREADS * CALLS_PER_THREAD
    assert max(through_aitune) <= tolerance

    backend_alone = _worst_error_from_threads(backend.infer, reference)  # concurrent calls into this backend
    print(f"[mlp, {THREADS} threads calling the backend at once, cuda_graphs={cuda_graphs}] worst {backend_alone}")
    assert counter.calls == 2 * THREADS * CALLS_PER_THREAD
    assert max(backend_alone) <= tolerance
