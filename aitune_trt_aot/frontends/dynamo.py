"""``ir="dynamo"``: torch.export with AITune's dynamic shapes, then ``torch_tensorrt.dynamo.compile``.

A quantized module (``precision="int8"``/``"fp8"``) is exported and compiled under ModelOpt's export mode, so that its
quantizers become ``tensorrt.quantize_op`` nodes, which Torch-TensorRT converts to TensorRT quantize/dequantize layers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch
from aitune.torch.libs.torch import TorchExporter
from aitune.torch.utils.tensor import format_tensor_name

from aitune_trt_aot.compiled import CompiledModel, count_ops, graph_coverage, layer_precisions
from aitune_trt_aot.frontends.base import CompileRequest, Frontend
from aitune_trt_aot.quantization import quantized_export
from aitune_trt_aot.ranges import clamped_to_proof, describe_all, program_ranges

logger = logging.getLogger(__name__)


def _non_tensor_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword values that are not tensors; tensors are captured by the exported program itself."""
    passed = {}
    for key, value in kwargs.items():
        if value is None or isinstance(value, torch.Tensor):
            continue
        passed[key] = [value] if isinstance(value, (int, float, str, bool)) else value
    return passed


class DynamoFrontend(Frontend):
    """Export with ``torch.export`` (batch and other dynamic axes from the graph spec), compile with Dynamo."""

    name = "dynamo"
    aliases = ("export",)
    feature = "dynamo_frontend"
    alternative = "ir='ts'"
    formats = ("exported_program", "torchscript", "aot_inductor")
    typed_precision = True  # autocast or a cast module: the dynamo path builds strongly typed networks
    quantizes = True  # torch.export keeps ModelOpt's quantize/dequantize nodes; Torch-TensorRT converts them

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Export the module and build one TensorRT engine per TensorRT-convertible subgraph."""
        with quantized_export(request.quantized):
            return self._compile(request)

    def _compile(self, request: CompileRequest) -> CompiledModel:
        torch_tensorrt = request.torch_tensorrt
        # Explicit min/max ranges first (TensorRT profiles need finite bounds); bounded Dim.DYNAMIC
        # hints when torch.export cannot prove the whole range.
        start = time.perf_counter()
        export = TorchExporter(use_auto=False, strict=False, fallback_to_dynamic_hints=True).export(
            request.module, request.sample, request.graph_spec, device=request.device
        )
        capture_seconds = round(time.perf_counter() - start, 3)
        # torch.export may prove a dimension smaller than AITune asked for (its find-max-batch-size step raises
        # the batch range); Torch-TensorRT refuses a profile above the proof, so build up to the proof instead.
        ranges = clamped_to_proof(request.ranges, program_ranges(export.exported_program))
        if ranges != request.ranges:
            logger.warning(
                "torch.export proved a smaller range than requested: building %s instead of %s.",
                describe_all(ranges),
                describe_all(request.ranges),
            )
            request = dataclasses.replace(request, ranges=ranges)
        for r in request.ranges:
            logger.info("Engine profile %s: min=%s opt=%s max=%s", r.name, r.min_shape, r.opt_shape, r.max_shape)
        settings = dataclasses.asdict(request.settings)
        settings["device"] = torch_tensorrt.Device(gpu_id=request.device.index or 0)
        names = [format_tensor_name(r.locator.path, "input") for r in request.ranges]
        compiled = torch_tensorrt.dynamo.compile(
            export.exported_program,
            inputs=request.trt_inputs(names),
            kwarg_inputs=_non_tensor_kwargs(export.sample[1]),
            **settings,
        )
        source = export.exported_program.graph_module
        layers = layer_precisions(source) if request.quantized else None
        return CompiledModel(
            module=compiled,
            sample=export.sample,
            coverage=graph_coverage(compiled, count_ops(source), layers),
            dynamic_shapes=export.dynamic_shapes,
            capture_seconds=capture_seconds,
            ranges=ranges,
        )
