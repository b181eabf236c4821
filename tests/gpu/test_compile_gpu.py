"""GPU: precisions, keyword inputs, stack facts, and the refusals that must come before any work."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aitune_trt_aot import (
    ConfigError,
    InputShapeError,
    MissingRequirementError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    UnsupportedInputsError,
    direct_call,
)
from aitune_trt_aot.settings import CompilationSettings, StandInCompilationSettings
from aitune_trt_aot.stack import current_stack
from tests.support import tolerances
from tests.support.gpu import inputs_for, scale_of, sweep_errors, the_backend, tune_case


def _backend(ir: str = "dynamo", precision: str = "fp32", **options) -> TorchTensorRTAotBackend:
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir=ir, precision=precision, **options))


@pytest.mark.quick
def test_stand_in_settings_match_the_installed_torch_tensorrt() -> None:
    """CPU machines use a stand-in CompilationSettings: its fields and plain defaults must be the real ones."""
    real = {f.name: f for f in dataclasses.fields(CompilationSettings)}
    stand_in = {f.name: f for f in dataclasses.fields(StandInCompilationSettings)}
    assert sorted(real) == sorted(stand_in)
    default, stand_in_default = CompilationSettings(), StandInCompilationSettings()
    for name in real:
        value = getattr(default, name)
        if value is None or isinstance(value, (bool, int, float, str)):
            assert getattr(stand_in_default, name) == value, name


@pytest.mark.parametrize(
    ("case", "precision", "route"),
    [
        pytest.param("mlp", "fp16", "autocast", marks=pytest.mark.quick),
        ("cnn", "fp16", "autocast"),
        ("encoder", "fp16", "cast_module"),  # Torch-TensorRT 2.14's autocast fails on it: the auto route falls back
        ("encoder", "fp32", "fp32"),
    ],
)
def test_precision_matches_eager(case: str, precision: str, route: str) -> None:
    """The precision asked for is the one built (route named), and outputs match eager across the sweep."""
    tuned, reference = tune_case(case, _backend(precision=precision), name=f"{case}-{precision}")
    backend = the_backend(tuned)
    errors = sweep_errors(tuned, reference, case)
    print(f"\n[{case} {precision}] precision={backend.precision} {backend.coverage.describe()} errors={errors}")
    assert backend.precision.startswith(route)
    assert max(errors.values()) <= tolerances.BY_PRECISION[precision] * scale_of(reference, case, 16)


def test_two_inputs_with_shared_batch_and_keywords() -> None:
    """Two tensors sharing the batch axis, a keyword tensor and a keyword float, through dynamo.

    The build's self-check compared both ends of the batch range with eager (4 recorded items, range 1..16).
    """
    tuned, reference = tune_case("two_inputs", _backend())
    errors = sweep_errors(tuned, reference, "two_inputs")
    checked = the_backend(tuned).checked_shapes
    print(f"\n[dynamo two_inputs fp32] errors={errors}; self-check shapes {checked}")
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "two_inputs", 16)
    batches_checked = [{shape[0] for shape in call} for call in checked]
    assert {1} in batches_checked and {16} in batches_checked
    args, kwargs = inputs_for("two_inputs", 4)
    # AITune itself refuses an unseen plain value (strict sample metadata); the backend refuses it too.
    with pytest.raises(RuntimeError, match="scale=2.0"):
        tuned(*args, **{**kwargs, "scale": 2.0})
    with pytest.raises(InputShapeError, match="built with scale=0.5"):
        the_backend(tuned).infer(*args, **{**kwargs, "scale": 2.0})


@pytest.mark.parametrize("ir", ["ts", "dynamo"])
def test_engines_wrong_above_batch_8_are_built_for_1_to_8(ir: str) -> None:
    """A forward that doubles its output above batch 8, tuned on batch-1 recordings over batch 1..16.

    ``torch.jit.trace`` keeps the batch-1 path, so every recorded call matches eager and only the self-check's
    call at the range's end (batch 16, the recorded data tiled) differs; the range search then finds 8 as the
    largest top that matches and the build is made again for 1..8. ``torch.export`` proves only 2..8 for the
    branch; the dynamo frontend builds up to that proof. Either way calls up to 8 match eager and a call at 16
    raises ``InputShapeError`` naming the built range, instead of serving wrong outputs at large batches.
    """
    tuned, reference = tune_case("batch_branch", _backend(ir), name=f"batch-branch-{ir}")
    backend = the_backend(tuned)
    errors = sweep_errors(tuned, reference, "batch_branch", order=(1, 8, 5, 2, 8, 3))
    print(f"\n[batch_branch {ir}] checked {backend.checked_shapes}; errors {errors}; steps {backend.build_seconds}")
    assert backend.checked_shapes[-1] == [(8, 64)]
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "batch_branch", 8)
    args, kwargs = inputs_for("batch_branch", 16)
    with pytest.raises(InputShapeError, match="outside the built range 1..8"):
        backend.infer(*args, **kwargs)


def test_direct_call_matches_the_module_and_skips_aitune(monkeypatch: pytest.MonkeyPatch) -> None:
    """direct_call gives the tuned module's results (keyword inputs included) with no call through AITune's layer.

    Every call reaches this backend (counted); a batch outside the tuned range gets the backend's InputShapeError.
    """
    tuned, reference = tune_case("two_inputs", _backend(), name="two-direct")
    direct = direct_call(tuned)
    assert direct.backend is the_backend(tuned)
    through_aitune = [0]
    aitune_call = type(tuned._self_wrapper).__call__

    def counted(self, *args, **kwargs):
        through_aitune[0] += 1
        return aitune_call(self, *args, **kwargs)

    monkeypatch.setattr(type(tuned._self_wrapper), "__call__", counted)
    errors = sweep_errors(tuned, reference, "two_inputs", call=direct)
    print(f"\n[direct_call two_inputs fp32] errors={errors}; calls through AITune's layer: {through_aitune[0]}")
    assert through_aitune[0] == 0
    assert max(errors.values()) <= tolerances.FP32 * scale_of(reference, "two_inputs", 16)
    args, kwargs = inputs_for("two_inputs", 17)  # tuned for batch 1..16
    with pytest.raises(InputShapeError, match="17"):
        direct(*args, **kwargs)


@pytest.mark.quick
def test_torchscript_refuses_keyword_inputs_before_any_work() -> None:
    """Ts compiles positional tensors only: the build fails at once and says to use ir='dynamo'."""
    with pytest.raises(UnsupportedInputsError, match="Use ir='dynamo'"):
        tune_case("two_inputs", _backend("ts"), name="two-ts")


@pytest.mark.quick
def test_torchscript_reduced_precision_refused_on_tensorrt_rtx() -> None:
    """TensorRT-RTX is strongly typed: ts builder-flag fp16 cannot work, so the plan refuses it."""
    if not current_stack().tensorrt_rtx:
        pytest.skip("standard TensorRT builds ts fp16 with builder flags")
    with pytest.raises(ConfigError, match="cannot build torch.float16 engines with TensorRT-RTX"):
        tune_case("mlp", _backend("ts", "fp16"), name="mlp-ts-fp16")


@pytest.mark.quick
def test_fx_missing_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the FX frontend is absent (TensorRT-RTX, Torch-TensorRT 2.14), ir='fx' fails at the start of the build."""
    if current_stack().has_frontend("fx_frontend"):
        pytest.skip("this Torch-TensorRT has the FX frontend")

    def no_export(*args, **kwargs):
        raise AssertionError("export ran before the frontend check")

    monkeypatch.setattr(torch.export, "export", no_export)
    monkeypatch.setattr(torch.jit, "trace", no_export)
    with pytest.raises(MissingRequirementError, match="fx_frontend.*Use ir='dynamo'"):
        tune_case("mlp", _backend("fx"), name="mlp-fx-missing")
