"""GPU: every IR the installed Torch-TensorRT supports, on the same models, against eager PyTorch.

Run on a GPU host: ``python -m pytest -m gpu tests``. Each test prints its measured errors.
"""

from __future__ import annotations

import time

import pytest
import torch

from aitune_trt_aot import (
    CompilationSettings,
    InputShapeError,
    MissingRequirementError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    UnsupportedInputsError,
)
from aitune_trt_aot.stack import enabled_features, is_tensorrt_rtx
from tests.gpu_support import inputs_for, max_abs_error, scale_of, selected_backends, tune_case

pytestmark = pytest.mark.gpu

FEATURE_OF_IR = {"dynamo": "dynamo_frontend", "ts": "torchscript_frontend", "fx": "fx_frontend"}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}
# Relative to the largest eager output. fp32 engines use TF32 matmuls (Torch-TensorRT's default).
TOLERANCE = {"fp32": 5e-3, "fp16": 3e-2}
CHECK_BATCHES = (1, 3, 8, 13, 16)


def _skip_if_missing(ir: str) -> None:
    if not enabled_features().get(FEATURE_OF_IR[ir], False):
        pytest.skip(f"ir={ir!r}: this Torch-TensorRT has no {FEATURE_OF_IR[ir]} (features: {enabled_features()})")


def _known_refusal(ir: str, case: str, precision: str) -> tuple[type[Exception], str, str] | None:
    """Combinations this Torch-TensorRT cannot build correctly, measured on the GPU host.

    Returns the clear error the backend must raise for them instead: (error type, message pattern, why).
    """
    if ir == "ts" and precision == "fp16" and is_tensorrt_rtx():
        return (
            ValueError,
            "cannot build torch.float16 engines with TensorRT-RTX",
            (
                "TensorRT-RTX TorchScript frontend: half-precision graphs fail (trt_util.cpp:165 unsqueeze assert), "
                "builder-flag fp16 is ignored by strongly typed networks"
            ),
        )
    if ir == "ts" and is_tensorrt_rtx():
        return (
            MissingRequirementError,
            r"with dynamic shapes \(inputs \['x'\]\) is refused on TensorRT-RTX",
            "TorchScript engines run in Torch-TensorRT's C++ runtime, whose TensorRT-RTX contexts use "
            "shape-specialised kernels: wrong results for the MLP after the first calls at a batch size",
        )
    return None


def _backend(ir: str, precision: str, **options) -> TorchTensorRTAotBackend:
    settings = CompilationSettings(enabled_precisions={PRECISIONS[precision]})
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir=ir, compile_config=settings, **options))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", ["mlp", "cnn"])
@pytest.mark.parametrize("ir", ["dynamo", "ts", "fx"])
def test_dynamic_batch_matches_eager(ir: str, case: str, precision: str) -> None:
    """Tuned with batches 1..16; outputs match eager at five batch sizes; batch 17 is refused clearly."""
    _skip_if_missing(ir)
    refusal = _known_refusal(ir, case, precision)
    if refusal is not None:
        error_type, pattern, why = refusal
        with pytest.raises(error_type, match=pattern) as raised:
            tune_case(case, _backend(ir, precision), name=f"{case}-{ir}-{precision}")
        print(f"\n[{ir} {case} {precision}] refused as expected ({why}): {str(raised.value)[:300]}")
        return
    start = time.perf_counter()
    tuned, reference = tune_case(case, _backend(ir, precision), name=f"{case}-{ir}-{precision}")
    tune_seconds = time.perf_counter() - start
    [backend] = selected_backends(tuned)
    assert isinstance(backend, TorchTensorRTAotBackend)
    assert backend.precision.startswith("fp32") if precision == "fp32" else "float16" in backend.precision
    errors = {b: max_abs_error(tuned, reference, case, b) for b in CHECK_BATCHES}
    scale = max(1.0, scale_of(reference, case, 16))
    print(
        f"\n[{ir} {case} {precision}] precision={backend.precision} tune={tune_seconds:.1f}s scale={scale:.2f} "
        f"max_abs_err={ {b: f'{e:.2e}' for b, e in errors.items()} }"
    )
    assert max(errors.values()) <= TOLERANCE[precision] * scale, errors

    args, kwargs = inputs_for(case, 17)
    with pytest.raises(InputShapeError, match="outside the built range 1..16"):
        tuned(*args, **kwargs)


def test_two_inputs_with_shared_batch_and_keywords() -> None:
    """Two tensors sharing the batch axis, a keyword tensor and a keyword float, through dynamo."""
    tuned, reference = tune_case("two_inputs", _backend("dynamo", "fp32"))
    errors = {b: max_abs_error(tuned, reference, "two_inputs", b) for b in (1, 2, 9, 16)}
    print(f"\n[dynamo two_inputs fp32] max_abs_err={errors}")
    assert max(errors.values()) <= TOLERANCE["fp32"] * max(1.0, scale_of(reference, "two_inputs", 16))
    args, kwargs = inputs_for("two_inputs", 4)
    # AITune itself refuses an unseen plain value (strict sample metadata); the backend refuses it too.
    with pytest.raises(RuntimeError, match="scale=2.0"):
        tuned(*args, **{**kwargs, "scale": 2.0})
    [backend] = selected_backends(tuned)
    with pytest.raises(InputShapeError, match="built with scale=0.5"):
        backend.infer(*args, **{**kwargs, "scale": 2.0})


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_transformer_encoder(precision: str) -> None:
    """A transformer encoder builds in fp16 too (autocast fails on it in Torch-TensorRT 2.11: cast module)."""
    tuned, reference = tune_case("encoder", _backend("dynamo", precision), name=f"encoder-{precision}")
    [backend] = selected_backends(tuned)
    errors = {b: max_abs_error(tuned, reference, "encoder", b) for b in (1, 7, 16)}
    print(f"\n[dynamo encoder {precision}] precision={backend.precision} max_abs_err={errors}")
    assert max(errors.values()) <= TOLERANCE[precision] * max(1.0, scale_of(reference, "encoder", 16))


@pytest.mark.parametrize("case", ["mlp"])
def test_torchscript_static_batch(case: str) -> None:
    """ir='ts' with one batch size (static shapes, no shape-specialised kernels) matches eager on every call."""
    _skip_if_missing("ts")
    tuned, reference = tune_case(case, _backend("ts", "fp32"), name=f"{case}-ts-static", batch_sizes=(8, 8))
    errors = max_abs_error(tuned, reference, case, 8, repeats=5)
    print(f"\n[ts {case} fp32 static batch 8] max_abs_err over 5 calls={errors:.2e}")
    assert errors <= TOLERANCE["fp32"] * max(1.0, scale_of(reference, case, 8))
    args, kwargs = inputs_for(case, 4)
    with pytest.raises(InputShapeError, match="outside the built range 8..8"):
        tuned(*args, **kwargs)


@pytest.mark.parametrize("ir", ["ts", "fx"])
def test_positional_only_irs_refuse_keyword_inputs(ir: str) -> None:
    """ts/fx cannot take keyword inputs: the build fails and says to use ir='dynamo'."""
    _skip_if_missing(ir)
    with pytest.raises(UnsupportedInputsError, match="Use ir='dynamo'"):
        tune_case("two_inputs", _backend(ir, "fp32"), name=f"two-{ir}")


def test_fx_missing_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the FX frontend is absent (TensorRT-RTX), ir='fx' fails at the start of the build."""
    if enabled_features().get("fx_frontend"):
        pytest.skip("this Torch-TensorRT has the FX frontend")

    def no_export(*args, **kwargs):
        raise AssertionError("export ran before the frontend check")

    monkeypatch.setattr(torch.export, "export", no_export)
    monkeypatch.setattr(torch.jit, "trace", no_export)
    with pytest.raises(MissingRequirementError, match="fx_frontend.*Use ir='dynamo'"):
        tune_case("mlp", _backend("fx", "fp32"), name="mlp-fx-missing")
