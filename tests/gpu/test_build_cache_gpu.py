"""GPU: a second ait.tune of an unchanged model reuses the build cache; a changed model is built afresh (full tier)."""

from __future__ import annotations

import time
from pathlib import Path

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import reload_in_fresh_process, scale_of, sweep_errors, the_backend, tune_case

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


def _tune(name: str, seed: int = 0):
    start = time.perf_counter()
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig()), name=name, seed=seed)
    return tuned, reference, time.perf_counter() - start


def test_second_tune_reuses_the_cached_build_and_a_changed_model_does_not(tmp_path: Path) -> None:
    """The conftest gives this test an empty build cache: the first tune builds, the second reuses it."""
    first, first_reference, first_seconds = _tune("mlp-first")
    assert not the_backend(first).built_from_cache
    second, second_reference, second_seconds = _tune("mlp-again")
    backend = the_backend(second)
    print(
        f"\n[build cache] first tune {first_seconds:.1f}s {the_backend(first).build_seconds}; second tune "
        f"{second_seconds:.1f}s {backend.build_seconds}"
    )
    assert backend.built_from_cache
    assert "compile" not in backend.build_seconds
    tolerance = tolerances.FP32 * scale_of(second_reference, "mlp", 16)
    errors = sweep_errors(second, second_reference, "mlp")
    assert max(errors.values()) <= tolerance

    # A checkpoint of the reused build is complete: it loads and runs in a fresh process.
    report = reload_in_fresh_process(tmp_path, second, second_reference, "mlp")
    assert report["backends"] == [OURS]
    assert report["served_by_backend"] == report["calls"] > 0
    assert max(report["errors_vs_eager"].values()) <= tolerance

    changed, changed_reference, _ = _tune("mlp-other-weights", seed=1)
    assert not the_backend(changed).built_from_cache
    assert max(sweep_errors(changed, changed_reference, "mlp").values()) <= tolerance
