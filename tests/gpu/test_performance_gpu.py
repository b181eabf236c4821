"""GPU: AITune's own performance validation keeps this backend's DEFAULT config over eager (no timing asserted here).

AITune's ``OneBackendStrategy`` profiles the tuned backend against eager PyTorch and silently keeps eager when the
backend is not faster. A default config that loses there delivers nothing to the user; docs/benchmark.md has the
measured ratios.
"""

from __future__ import annotations

import aitune.torch as ait
import pytest

from aitune_trt_aot import TorchTensorRTAotBackend
from tests.support.gpu import selected_backends, tune_case

# AITune times each call of the backend (``Backend.infer``, without its own per-call layer) against eager at the
# tuned range's largest batch, and keeps eager unless the backend is at least 1% faster. These runs must not share
# the GPU: `serial` makes scripts/gpu-tests.sh run this file alone, after the parallel pass (sharing the GPU with
# 15 other workers, AITune kept this backend for the tiny MLP in some runs and eager in others).
pytestmark = pytest.mark.serial

# The tests' 3-layer MLP (64 -> 256 -> 256 -> 10) is five small kernels: eager launches them about as fast as this
# backend replays its CUDA graph and copies the input in and the output out. Run alone, AITune measured 0.56x
# eager's throughput (2026-11-29, before the lighter replay path) and rightly kept eager. docs/benchmark.md.
TINY_MODEL = pytest.mark.xfail(
    strict=False,
    reason="five tiny kernels: eager is about as fast as a graph replay (docs/known-issues.md: Small models)",
)


@pytest.mark.parametrize("case", [pytest.param("mlp", marks=TINY_MODEL), "wide_mlp", "resnet50"])
def test_performance_validation_keeps_the_default_config(case: str) -> None:
    """Tuned with AITune's performance validation on (its default), the module is served by this backend."""
    backend = TorchTensorRTAotBackend()
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)  # keep the tuned batch range; validation stays on
    tuned, _ = tune_case(case, backend, name=f"perf-{case}", strategy=strategy)
    chosen = selected_backends(tuned)
    measured = [(r.backend_description, round(float(r.speedup), 2), r.passed) for r in strategy.perf_validation_results]
    report = (
        f"[{case} default config, performance validation on] AITune measured (backend, speedup over eager, passed) "
        f"{measured}; kept {[b.describe() for b in chosen]}"
    )
    print("\n" + report)
    assert chosen and all(isinstance(b, TorchTensorRTAotBackend) for b in chosen), report
