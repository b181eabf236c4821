"""GPU: a second ait.tune of an unchanged model reuses the build cache; a changed model is built afresh (full tier)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig, build_cache
from aitune_trt_aot.files import file_digest
from tests.support import tolerances
from tests.support.gpu import reload_in_fresh_process, scale_of, sweep_errors, the_backend, tune_case

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


def _tune(name: str, seed: int = 0):
    start = time.perf_counter()
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig()), name=name, seed=seed)
    return tuned, reference, time.perf_counter() - start


def test_second_tune_reuses_the_cached_build_and_a_changed_model_does_not(tmp_path: Path, fresh_process) -> None:
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
    report = reload_in_fresh_process(fresh_process, tmp_path, second, second_reference, "mlp")
    assert report["backends"] == [OURS]
    assert report["served_by_backend"] == report["calls"] > 0
    assert max(report["errors_vs_eager"].values()) <= tolerance

    changed, changed_reference, _ = _tune("mlp-other-weights", seed=1)
    assert not the_backend(changed).built_from_cache
    assert max(sweep_errors(changed, changed_reference, "mlp").values()) <= tolerance


def test_cached_build_that_fails_the_self_check_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    """A cache entry with another model's engines (checksum made to match) is dropped, and the model rebuilt.

    The tune notices on the check against eager, drops the entry, builds afresh and stores the new build.
    """
    cache = build_cache.cache_root()  # the conftest's per-test folder
    _tune("mlp-seed0")
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    _tune("mlp-seed1", seed=1)
    (other,) = [p for p in cache.iterdir() if p.is_dir() and p != entry]

    record = json.loads((entry / build_cache.ENTRY_FILE).read_text())
    artifact = entry / record["artifact_name"]
    artifact.write_bytes((other / record["artifact_name"]).read_bytes())  # seed 1's engines, seed 0's fingerprint
    (entry / build_cache.ENTRY_FILE).write_text(json.dumps(record | {"checksum": file_digest(artifact)}))

    rebuilt, reference, _ = _tune("mlp-seed0-again")
    backend = the_backend(rebuilt)
    assert backend._build_results[0]["cache_hit"] is True
    assert not backend.built_from_cache
    assert "compile" in backend.build_seconds
    assert max(sweep_errors(rebuilt, reference, "mlp").values()) <= tolerances.FP32 * scale_of(reference, "mlp", 16)
    stored = json.loads((entry / build_cache.ENTRY_FILE).read_text())
    assert stored["checksum"] == file_digest(backend.artifact_path) == file_digest(entry / stored["artifact_name"])
