"""GPU: ``cuda_graphs=True``: one graph per input shape, right outputs at every shape, in any call order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aitune_trt_aot import CompilationSettings, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from tests.gpu_support import (
    inputs_for,
    max_abs_error,
    reload_in_fresh_process,
    scale_of,
    selected_backends,
    tune_case,
)

pytestmark = pytest.mark.gpu
OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"
CALL_ORDER = (1, 16, 5, 1, 16, 5)  # switching shapes back and forth: each switch replays another graph


@pytest.mark.parametrize(
    ("case", "precision", "output_format"),
    [
        ("mlp", torch.float32, "auto"),
        ("mlp", torch.float16, "auto"),
        ("two_inputs", torch.float32, "auto"),
    ],
)
def test_cuda_graphs_give_eager_results(
    tmp_path: Path, repo_root: Path, case: str, precision: torch.dtype, output_format: str
) -> None:
    """Outputs match eager at every batch size, three calls each, in an order that switches shapes."""
    config = TorchTensorRTAotBackendConfig(
        compile_config=CompilationSettings(enabled_precisions={precision}),
        output_format=output_format,
        cuda_graphs=True,
    )
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(config))
    (backend,) = selected_backends(tuned)
    assert isinstance(backend._runner, CudaGraphRunner)
    errors: dict[int, float] = {}
    for batch in CALL_ORDER:
        errors[batch] = max(errors.get(batch, 0.0), max_abs_error(tuned, reference, case, batch))
    tolerance = (5e-3 if precision == torch.float32 else 3e-2) * max(1.0, scale_of(reference, case, 16))
    print(f"\n[{case} {precision} {output_format} CUDA graphs: {backend._runner.graph_count} graphs] errors {errors}")
    assert max(errors.values()) <= tolerance
    assert backend._runner.graph_count >= 3

    # A result stays valid after the next call of the same shape (outputs are copied out of the graph).
    first_args, first_kwargs = inputs_for(case, 5, seed=10)
    second_args, second_kwargs = inputs_for(case, 5, seed=20)
    with torch.no_grad():
        first = tuned(*first_args, **first_kwargs)
        kept = first.clone()
        tuned(*second_args, **second_kwargs)
    assert torch.equal(first, kept)

    report = reload_in_fresh_process(repo_root, tmp_path, tuned, reference, case)
    print(f"[{case} {precision} {output_format} CUDA graphs, ait.load in a fresh process] {report}")
    assert report["backends"] == [OURS]
    assert max(report["errors"].values()) <= 1e-5
