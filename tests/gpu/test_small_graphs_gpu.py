"""GPU: graphs TensorRT takes partly or not at all: each builds and reloads correctly, or raises a clear BuildError."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import aitune.torch as ait
import pytest
import torch

from aitune_trt_aot import BuildError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig, save
from tests.support import tolerances
from tests.support.gpu import (
    BATCH_SIZES,
    SWEEP,
    CallCounter,
    inputs_for,
    reload_in_fresh_process,
    scale_of,
    strategy_for,
    sweep_errors,
    the_backend,
    tune_case,
)
from tests.support.models import build_model, caller, dataset

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
def test_small_graph_builds_with_min_block_size_1(tmp_path: Path, fresh_process) -> None:
    """The fix the error names works: min_block_size=1 builds one engine that matches eager and reloads."""
    tuned, reference = tune_case("small_mlp", _backend(min_block_size=1))
    backend = the_backend(tuned)
    errors = sweep_errors(tuned, reference, "small_mlp")
    print(f"\n[small_mlp min_block_size=1] {backend.coverage.describe()} errors {errors}")
    assert backend.coverage.engines == 1 and backend.coverage.pytorch_ops == 0
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "small_mlp", 16)
    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, "small_mlp")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32 * scale_of(reference, "small_mlp", 16)


# Measured on the 2.14 stack (docs/known-issues.md): artifacts of the graph split around the PyTorch-run rfft fail
# after saving in every format. The build must then end in a BuildError that names the split and the fix, never in
# a wrong result; where a format works, it must be correct. The fix the error names is tested below.
SPLIT_GRAPH_FIX = "Wrap only the parts TensorRT converts in ait.Module"


@pytest.mark.parametrize(
    "output_format", [pytest.param("exported_program", marks=pytest.mark.quick), "torchscript", "aot_inductor"]
)
def test_partly_converted_graph_in_every_format(tmp_path: Path, fresh_process, output_format: str) -> None:
    """Rfft stays in PyTorch between two engines: each format reloads and matches, or refuses with the fix."""
    try:
        tuned, reference = tune_case("fft_mlp", _backend(output_format), name=f"fft-{output_format}")
    except BuildError as error:
        print(f"\n[fft_mlp {output_format}] BuildError: {error}")
        assert SPLIT_GRAPH_FIX in str(error) and "in PyTorch" in str(error)
        return
    backend = the_backend(tuned)
    coverage = backend.coverage
    errors = sweep_errors(tuned, reference, "fft_mlp")
    print(f"\n[fft_mlp {output_format}] {coverage.describe()} errors {errors}")
    assert coverage.engines >= 1 and coverage.pytorch_ops >= 1
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)
    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, "fft_mlp")
    print(f"[fft_mlp {output_format}] fresh-process reload {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)


@pytest.mark.quick
def test_split_graph_fix_tunes_each_converted_part(tmp_path: Path) -> None:
    """The fix the BuildError names: the layers before and after rfft as two ait.Modules, rfft eager between them."""
    device = torch.device("cuda")
    model = build_model("fft_mlp").to(device)
    reference = copy.deepcopy(model)

    names = {part: f"fft-{part}-{uuid.uuid4().hex[:8]}" for part in ("pre", "post")}  # the checkpoint's keys

    def wrap(target: torch.nn.Module) -> None:
        for part, name in names.items():
            setattr(target, part, ait.Module(getattr(target, part), name, strategy=strategy_for(_backend())))

    wrap(model)
    ait.tune(
        caller("fft_mlp", model),
        dataset("fft_mlp", device),
        batch_sizes=list(BATCH_SIZES),
        device=device,
        ignore_failing_modules=False,
    )
    backends = [the_backend(model.pre), the_backend(model.post)]
    counters = [CallCounter(backend) for backend in backends]
    worst = 0.0
    for position, batch in enumerate(SWEEP):
        (x,), _ = inputs_for("fft_mlp", batch, seed=200 + position)
        with torch.no_grad():
            worst = max(worst, float((model(x) - reference(x)).abs().max()))
    print(f"\n[fft_mlp split fix] {[b.coverage.describe() for b in backends]} worst error {worst:.2e}")
    assert [c.calls for c in counters] == [len(SWEEP), len(SWEEP)]
    assert worst <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)

    save(model, tmp_path / "fft.ait")
    reloaded = build_model("fft_mlp", seed=123).to(device)  # other weights: the engines must not depend on them
    wrap(reloaded)
    ait.load(reloaded, tmp_path / "fft.ait")
    (x,), _ = inputs_for("fft_mlp", 7)
    with torch.no_grad():
        assert float((reloaded(x) - reference(x)).abs().max()) <= tolerances.FP32 * scale_of(reference, "fft_mlp", 16)
