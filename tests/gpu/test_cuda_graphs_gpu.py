"""GPU: ``cuda_graphs=True``: one graph per input shape, right outputs at every shape, in any call order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from tests.support import tolerances
from tests.support.gpu import inputs_for, reload_in_fresh_process, scale_of, sweep_errors, the_backend, tune_case

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


@pytest.mark.parametrize(
    ("case", "precision"),
    [pytest.param("mlp", "fp32", marks=pytest.mark.quick), ("mlp", "fp16"), ("two_inputs", "fp32")],
)
def test_cuda_graphs_give_eager_results(tmp_path: Path, fresh_process, case: str, precision: str) -> None:
    """Outputs match eager at every batch size of the sweep; a result stays valid after the next call."""
    config = TorchTensorRTAotBackendConfig(precision=precision, cuda_graphs=True)
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(config))
    backend = the_backend(tuned)
    assert isinstance(backend.runner, CudaGraphRunner)
    errors = sweep_errors(tuned, reference, case)
    print(f"\n[{case} {precision} CUDA graphs: {backend.runner.graph_count} graphs] errors {errors}")
    assert max(errors.values()) <= tolerances.BY_PRECISION[precision] * scale_of(reference, case, 16)
    assert backend.runner.graph_count >= 8

    first_args, first_kwargs = inputs_for(case, 5, seed=10)
    second_args, second_kwargs = inputs_for(case, 5, seed=20)
    with torch.no_grad():
        first = tuned(*first_args, **first_kwargs)
        kept = first.clone()
        tuned(*second_args, **second_kwargs)
    assert torch.equal(first, kept)

    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, case)
    print(f"[{case} {precision} CUDA graphs, ait.load in a fresh process] {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32
