"""GPU: ``torchrun`` with several ranks on this host shares one build (full tier); a device the host lacks is refused.

The multi-rank test runs ``tests/scripts/tune_ranks.py`` under ``python -m torch.distributed.run`` (gloo; every rank
on ``cuda:0`` with an explicit ``device=``; NCCL refuses two ranks on one GPU), first with 1 rank, then with 4 ranks
sharing one ``AITUNE_TRT_AOT_CACHE_DIR``, tuning ResNet-50. It is marked ``serial``: it times tunes, so the full tier
runs it alone, after the parallel pass. Run it alone with
``AITUNE_TRT_AOT_PYTHON=python3 bash scripts/test.sh tests/gpu/test_distributed_gpu.py -s -p no:xdist``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import aitune.torch as ait
import pytest
import torch
from aitune.torch.backend import TorchEagerBackend

import aitune_trt_aot
from aitune_trt_aot import ArtifactError, Pt2LoadError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import inputs_for, scale_of, tune_case
from tests.support.models import build_model
from tests.support.processes import run_ranks
from tests.support.tuning import strategy_for

CASE = "resnet50"


def _tune_with_ranks(tmp_path: Path, ranks: int) -> tuple[list[dict], float]:
    """Tune ResNet-50 in ``ranks`` processes sharing an empty build cache; the reports and the tune's wall time."""
    run = tmp_path / f"{ranks}-ranks"
    env = {"AITUNE_CACHE_DIR": str(run / "aitune"), "AITUNE_TRT_AOT_CACHE_DIR": str(run / "builds")}
    result, reports = run_ranks(ranks, [CASE, "cuda:0", str(run / "out")], run / "out", env, timeout=900)
    output = f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    assert result.returncode == 0, output
    assert [report["rank"] for report in reports] == list(range(ranks)), output
    assert all(report["error"] is None for report in reports), [report["error"] for report in reports]
    span = max(r["tune_ended"] for r in reports) - min(r["tune_started"] for r in reports)
    for report in reports:
        role = "compiled" if not report["built_from_cache"] else f"reused (waited {report['waited_seconds']:.1f} s)"
        print(
            f"\n[{ranks} ranks] rank {report['rank']}: {role}; tune {report['tune_seconds']:.1f} s; steps "
            f"{report['build_seconds']}; error vs eager {report['error_vs_eager']:.2e}, after save and load "
            f"{report['loaded_error_vs_eager']:.2e}"
        )
        for line in report["log"]:
            print(f"    {line}")
    return reports, span


@pytest.mark.serial
def test_four_ranks_on_one_gpu_compile_once_and_each_load_and_match_eager(tmp_path: Path) -> None:
    """Four ranks (torchrun --nproc_per_node=4) on one GPU: exactly one compiles; all four load it and match eager."""
    single, single_seconds = _tune_with_ranks(tmp_path, 1)
    assert not single[0]["built_from_cache"]
    reports, span = _tune_with_ranks(tmp_path, 4)
    print(
        f"\n[tune time] 1 rank: {single_seconds:.1f} s; 4 ranks: {span:.1f} s from the first rank's start to the last "
        f"rank's end ({span / single_seconds:.2f}x; the issue's target is at most 1.3x)"
    )
    assert sum(not report["built_from_cache"] for report in reports) == 1, "exactly one rank compiled"
    for report in reports:
        tolerance = tolerances.FP32 * report["output_scale"]
        assert report["calls_served"] > 0
        assert report["error_vs_eager"] <= tolerance and report["loaded_error_vs_eager"] <= tolerance
        assert report["saved"].endswith(f"model.rank-{report['rank']}-of-4.ait")
    builder = next(report for report in reports if not report["built_from_cache"])
    for report in reports:
        if report is not builder:
            assert any(f"reusing the build of rank {builder['rank']} of 4" in line for line in report["log"])


def test_a_device_this_host_lacks_is_refused_and_one_it_has_gets_the_engines(tmp_path: Path) -> None:
    """Loading for cuda:1: refused naming the devices where the host has one GPU; on two GPUs, engines go there.

    Both for a checkpoint (``aitune_trt_aot.load`` with ``device_map``) and for a ``.pt2`` (``load_pt2``).
    """
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(output_format="aot_inductor"))
    tuned, reference = tune_case("mlp", backend, name="mlp-device")
    checkpoint = aitune_trt_aot.save(tuned, tmp_path / "model.ait")
    package = aitune_trt_aot.save_pt2(tuned, tmp_path / "model.pt2")
    name = tuned.name
    fresh = ait.Module(build_model("mlp", seed=5), name, strategy=strategy_for(TorchEagerBackend()))
    if torch.cuda.device_count() < 2:
        with pytest.raises(ArtifactError, match=r"on cuda:1: this machine has 1 CUDA device \(cuda:0\)"):
            aitune_trt_aot.load(fresh, checkpoint, device_map={"": "cuda:1"})
        with pytest.raises(Pt2LoadError, match=r"on cuda:1: this machine has 1 CUDA device \(cuda:0\)"):
            aitune_trt_aot.load_pt2(package, device="cuda:1")
        return
    # Two GPUs or more: the engines and the outputs land on cuda:1, and match eager there.
    target = torch.device("cuda", 1)
    on_target = copy.deepcopy(reference).to(target)
    loaded = aitune_trt_aot.load(fresh, checkpoint, device_map={"": target})
    pt2 = aitune_trt_aot.load_pt2(package, device=target)
    (x,), _ = inputs_for("mlp", 8)
    x = x.to(target)
    with torch.no_grad():
        expected = on_target(x)
        for output in (loaded(x), pt2(x)):
            assert output.device == target
            assert float((output - expected).abs().max()) <= tolerances.FP32 * scale_of(reference, "mlp", 8)
