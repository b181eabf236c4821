"""GPU: graphs TensorRT takes partly or not at all: each builds and reloads correctly, or raises a clear BuildError."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitune_trt_aot import BuildError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import reload_in_fresh_process, scale_of, sweep_errors, the_backend, tune_case

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"


def _backend(output_format: str = "auto", **settings) -> TorchTensorRTAotBackend:
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(output_format=output_format, compile_config=settings))


@pytest.mark.quick
def test_graph_below_min_block_size_is_refused_with_the_fix() -> None:
    """Linear-GELU-Linear has 3 ops < min_block_size 5: zero engines, so a BuildError that names the setting."""
    with pytest.raises(BuildError, match=r"built no TensorRT engine.*min_block_size=5.*min_block_size=1") as raised:
        tune_case("small_mlp", _backend())
    print(f"\n[small_mlp default] {raised.value}")


@pytest.mark.quick
def test_graph_without_convertible_ops_is_refused() -> None:
    """torch.cumprod alone has no TensorRT converter: even min_block_size=1 builds no engine, and says so."""
    with pytest.raises(BuildError, match="built no TensorRT engine") as raised:
        tune_case("cumprod", _backend(min_block_size=1))
    print(f"\n[cumprod min_block_size=1] {raised.value}")


@pytest.mark.quick
def test_small_graph_builds_with_min_block_size_1(tmp_path: Path) -> None:
    """The fix the error names works: min_block_size=1 builds one engine that matches eager and reloads."""
    tuned, reference = tune_case("small_mlp", _backend(min_block_size=1))
    backend = the_backend(tuned)
    errors = sweep_errors(tuned, reference, "small_mlp")
    print(f"\n[small_mlp min_block_size=1] {backend.coverage.describe()} errors {errors}")
    assert backend.coverage.engines == 1 and backend.coverage.pytorch_ops == 0
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "small_mlp", 16)
    report = reload_in_fresh_process(tmp_path, tuned, reference, "small_mlp")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32 * scale_of(reference, "small_mlp", 16)


# Measured on the 2.14 stack (docs/known-issues.md): the engine after the PyTorch-run rfft refuses its input shape
# when run from the saved artifact, and the exported_program written by retrace does not load back. Each must end
# in a BuildError at build time, never in a wrong result.
PARTIAL_GRAPH_FAILS = pytest.mark.xfail(raises=BuildError, strict=False, reason="docs/known-issues.md: rfft graphs")


@pytest.mark.parametrize(
    "output_format",
    [
        pytest.param("exported_program", marks=[pytest.mark.quick, PARTIAL_GRAPH_FAILS]),
        pytest.param("torchscript", marks=PARTIAL_GRAPH_FAILS),
        pytest.param("aot_inductor", marks=PARTIAL_GRAPH_FAILS),
    ],
)
def test_partly_converted_graph_in_every_format(tmp_path: Path, output_format: str) -> None:
    """Rfft stays in PyTorch, the MLP blocks around it run in TensorRT; every format saves, reloads and matches."""
    tuned, reference = tune_case("fft_mlp", _backend(output_format), name=f"fft-{output_format}")
    backend = the_backend(tuned)
    coverage = backend.coverage
    errors = sweep_errors(tuned, reference, "fft_mlp")
    print(f"\n[fft_mlp {output_format}] {coverage.describe()} errors {errors}")
    assert coverage.engines >= 1 and coverage.pytorch_ops >= 1
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)
    report = reload_in_fresh_process(tmp_path, tuned, reference, "fft_mlp")
    print(f"[fft_mlp {output_format}] fresh-process reload {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)
