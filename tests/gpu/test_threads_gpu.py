"""GPU: one tuned module called from 4 threads at once gives each caller its own correct result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import CallCounter, inputs_for, scale_of, the_backend, tune_case

THREADS = 4
CALLS_PER_THREAD = 24
BATCHES = (1, 16, 5, 12, 3, 8, 2, 13)


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["engines", "cuda-graphs"])
def test_four_threads_at_once_get_their_own_results(cuda_graphs: bool) -> None:
    """Every thread's outputs match eager for its own inputs; graphs are captured while other threads call."""
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=cuda_graphs)))
    counter = CallCounter(the_backend(tuned))

    def worker(thread: int) -> float:
        worst = 0.0
        with torch.no_grad():  # grad mode is per thread
            for call in range(CALLS_PER_THREAD):
                batch = BATCHES[(call + 3 * thread) % len(BATCHES)]
                (x,), _ = inputs_for("mlp", batch, seed=1000 * thread + call)
                actual = tuned(x)
                expected = reference(x)
                worst = max(worst, float((actual - expected).abs().max()))
        return worst

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        worst_per_thread = list(pool.map(worker, range(THREADS)))
    print(f"\n[mlp, {THREADS} threads, cuda_graphs={cuda_graphs}] worst error per thread {worst_per_thread}")
    assert counter.calls == THREADS * CALLS_PER_THREAD
    assert max(worst_per_thread) <= tolerances.FP32 * scale_of(reference, "mlp", 16)
