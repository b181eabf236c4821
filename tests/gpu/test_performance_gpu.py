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

# The MLP's margin is thin: at batch 1 its engines in their CUDA graph take less time than AITune's own per-call
# layer (~0.1 ms: its forward proxy, signature normalisation, graph lookup; docs/benchmark.md). AITune kept eager
# in the full-tier runs before eager kernel specialization (2026-11-29, morning); after it, it kept this backend in
# 2 of 3 runs (XPASS; AITune measured 1.11x eager's throughput in one) and eager in the third. It stays a
# non-strict xfail until runs show a steady margin: the test prints AITune's measurement.
AITUNE_OVERHEAD = pytest.mark.xfail(
    strict=False, reason="AITune's per-call overhead exceeds a small MLP's eager time (docs/benchmark.md)"
)


@pytest.mark.parametrize("case", [pytest.param("mlp", marks=AITUNE_OVERHEAD), "resnet50"])
def test_performance_validation_keeps_the_default_config(case: str) -> None:
    """Tuned with AITune's performance validation on (its default), the module is served by this backend."""
    backend = TorchTensorRTAotBackend()
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)  # keep the tuned batch range; validation stays on
    tuned, _ = tune_case(case, backend, name=f"perf-{case}", strategy=strategy)
    chosen = selected_backends(tuned)
    measured = [(r.backend_description, round(r.speedup, 2)) for r in strategy.perf_validation_results]
    print(
        f"\n[{case} default config, performance validation on] AITune measured (backend, speedup over eager) "
        f"{measured}; kept {[b.describe() for b in chosen]}"
    )
    assert chosen and all(isinstance(b, TorchTensorRTAotBackend) for b in chosen), f"AITune kept {chosen}"
