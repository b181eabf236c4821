"""Quantize step (``precision="int8"``/``"fp8"``): a calibrated, quantized copy of the module for the frontend.

NVIDIA ModelOpt quantizes a deep copy of the module cast to the unquantized layers' precision, calibrated on AITune's
recorded calls of this graph; the user's module and its weights are never touched (AITune may still run them: eager
fallback, other backends). The copy goes to the frontend behind the same constants and precision boundary as any
other build, so the engines take and return what eager PyTorch does.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from aitune.torch.utils.module import move_tensors_to_device
from torch import nn

from aitune_trt_aot import hints
from aitune_trt_aot.compiled import Sample
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.pipeline.capture import Capture
from aitune_trt_aot.pipeline.job import BuildJob
from aitune_trt_aot.plan import BuildPlan, check_exclude
from aitune_trt_aot.precision import cast_floating, output_dtypes, precision_boundary
from aitune_trt_aot.quantization import CALIBRATION_CAP, QuantizationConfig, require_modelopt
from aitune_trt_aot.wrappers import bind_constants

logger = logging.getLogger(__name__)

FEW_CALIBRATION_SAMPLES = 8  # fewer recorded calls than this calibrate, with a warning saying how to record more


@dataclass(frozen=True)
class Calibration:
    """What the quantize step calibrated on.

    Attributes:
        recipe: The ModelOpt recipe applied (``INT8_DEFAULT_CFG``, ...).
        samples: The indexes of the recorded calls that calibrated, in order.
        recorded: How many calls AITune recorded for the graph.
        seconds: Wall time of the calibration passes (ModelOpt's forward loop).

    """

    recipe: str
    samples: list[int]
    recorded: int
    seconds: float


def calibration_indexes(recorded: int, wanted: int | None, cap: int = CALIBRATION_CAP) -> list[int]:
    """Indexes of the recorded calls that calibrate: ``wanted`` of ``recorded`` (None: all, up to ``cap``).

    Evenly spaced, the first and the last included, so a recording that drifts (batch sizes tried in turn, data
    that changes over a run) is calibrated on from end to end; the same every time for the same counts.
    """
    count = min(recorded, cap if wanted is None else wanted)
    if count <= 0:
        return []
    if count == 1:
        return [0]
    return [i * (recorded - 1) // (count - 1) for i in range(count)]


# Layers an 8-bit build leaves in the unquantized precision, whatever the recipe. TensorRT-RTX runs FP8 only for
# matrix multiplications (quantized convolutions gave NaN outputs for ResNet-50 on an H200, 2026-12-07), and with
# INT8-quantized convolutions TensorRT-RTX 1.6 built no engine at all (a two-conv CNN and ResNet-50, on an H100 and
# an H200, 2026-12-07: "build_serialized_network returned None"; matrix multiplications build).
UNQUANTIZED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def recipe_config(mtq: Any, precision: str, quantization: QuantizationConfig) -> dict[str, Any]:
    """ModelOpt's config for the recipe (a copy), with quantizers disabled where they must not run.

    Those are the quantizers of ``quantization.exclude``'s modules and of the layers TensorRT-RTX builds no 8-bit
    engine for (:data:`UNQUANTIZED_LAYERS`).
    """
    recipe = copy.deepcopy(getattr(mtq, quantization.recipe_name(precision)))
    entries = recipe.get("quant_cfg")
    if isinstance(entries, list):  # older ModelOpt releases have no parent_class entries
        for layer in UNQUANTIZED_LAYERS:
            parent = mtq.QuantModuleRegistry.get_key(layer)
            if parent is not None:
                entries.append({"quantizer_name": "*", "parent_class": parent, "enable": False})
    for pattern in quantization.exclude:
        # Quantizers are named <module>.input_quantizer / .weight_quantizer / .output_quantizer: every quantizer
        # of a module the pattern names, and of the modules inside it.
        wildcard = f"{pattern}.*"
        if isinstance(entries, list):  # ModelOpt 0.47: an ordered list, later entries win
            entries.append({"quantizer_name": wildcard, "enable": False})
        else:  # older releases: a dict of wildcard -> attributes
            recipe.setdefault("quant_cfg", {})[wildcard] = {"enable": False}
    return recipe


def _calibration_loop(
    samples: Sequence[Sample], indexes: list[int], device: torch.device, dtype: torch.dtype | None, spent: list[float]
) -> Any:
    """ModelOpt's ``forward_loop``: run the chosen recorded calls (inputs cast to ``dtype``); time it into ``spent``."""

    def forward_loop(model: nn.Module) -> None:
        start = time.perf_counter()
        with torch.no_grad():
            for index in indexes:
                args, kwargs = move_tensors_to_device(samples[index], device)
                if dtype is not None:
                    args, kwargs = cast_floating((args, kwargs), dtype)
                model(*args, **kwargs)
        spent.append(time.perf_counter() - start)

    return forward_loop


def quantize_capture(
    plan: BuildPlan, capture: Capture, job: BuildJob, module: nn.Module
) -> tuple[Capture, Calibration]:
    """``capture`` with a quantized, calibrated copy of ``module`` as the module to compile, and what calibrated it.

    ``module`` is the user's module (eval mode, on the build device); it is copied, never changed.
    """
    mtq = require_modelopt()
    precision, dtype = plan.precision.quantized, plan.precision.dtype
    quantization = job.config.quantization
    quantized = copy.deepcopy(module)
    if dtype is not None:
        quantized = quantized.to(dtype)
    check_exclude(quantization.exclude, [name for name, _ in quantized.named_modules()])
    indexes = calibration_indexes(len(job.samples), quantization.calibration_samples)
    if len(indexes) < FEW_CALIBRATION_SAMPLES:
        logger.warning(
            "Calibrating %s on %d recorded call(s) of this graph: AITune stores aitune.torch.config."
            "max_num_samples_stored calls per graph (default 1). Raise it before ait.tune (e.g. to 32) to calibrate "
            "on data that represents the model's inputs.",
            precision,
            len(indexes),
        )
    spent: list[float] = []
    recipe = quantization.recipe_name(precision)
    loop = _calibration_loop(job.samples, indexes, job.device, dtype, spent)
    try:
        mtq.quantize(quantized, recipe_config(mtq, precision, quantization), forward_loop=loop)
    except Exception as error:
        raise BuildError(
            f"ModelOpt could not quantize this model to {precision} with {recipe} "
            f"({type(error).__name__}: {error}). {hints.for_no_quantized_layers()}"
        ) from error
    request = capture.request
    compiled_module = bind_constants(quantized, capture.guard.constants)
    if dtype is not None:  # take and return eager's dtypes, as cast_module builds do (precision.module_for)
        out_dtypes = output_dtypes(request.module, move_tensors_to_device(request.sample, request.device))
        compiled_module = precision_boundary(compiled_module, dtype, out_dtypes)
    calibration = Calibration(recipe, indexes, len(job.samples), round(sum(spent), 3))
    logger.info(
        "Quantized a copy of the module to %s with ModelOpt's %s, calibrated on %d of %d recorded call(s) in %.2f s.",
        precision,
        recipe,
        len(indexes),
        len(job.samples),
        calibration.seconds,
    )
    request = dataclasses.replace(request, module=compiled_module, quantized=True)
    return dataclasses.replace(capture, request=request), calibration
