"""``ir="dynamo"``: torch.export with AITune's dynamic shapes, then ``torch_tensorrt.dynamo.compile``."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from aitune.torch.libs.torch import TorchExporter
from aitune.torch.utils.tensor import format_tensor_name

from aitune_trt_aot.frontends.base import CompiledModel, CompileRequest, Frontend

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
    feature = "dynamo_frontend"
    alternative = "ir='ts'"
    other_formats = ("aot_inductor", "pickled_module")

    def artifact_format(self, tensorrt_rtx: bool) -> str:
        """An ExportedProgram (C++ runtime); on TensorRT-RTX the pickled module (Python runtime).

        TensorRT-RTX needs the Python runtime to turn off shape-specialised kernels (``rtx_runtime``).
        """
        return "pickled_module" if tensorrt_rtx else "exported_program"

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Export the module and build one TensorRT engine per TensorRT-convertible subgraph."""
        torch_tensorrt = request.torch_tensorrt
        # Explicit min/max ranges first (TensorRT profiles need finite bounds); bounded Dim.DYNAMIC
        # hints when torch.export cannot prove the whole range.
        export = TorchExporter(use_auto=False, strict=False, fallback_to_dynamic_hints=True).export(
            request.module, request.sample, request.graph_spec, device=request.device
        )
        inputs = []
        for locator, tensor_spec in request.graph_spec.input_spec.tensor_data:
            min_shape, opt_shape, max_shape = request.graph_spec.get_effective_input_shapes(locator, tensor_spec)
            inputs.append(
                torch_tensorrt.Input(
                    min_shape=min_shape,
                    opt_shape=opt_shape,
                    max_shape=max_shape,
                    dtype=tensor_spec.dtype,
                    name=format_tensor_name(locator.path, "input"),
                )
            )
            logger.info("Engine profile %s: min=%s opt=%s max=%s", locator, min_shape, opt_shape, max_shape)
        settings = dataclasses.asdict(request.settings)
        settings["device"] = torch_tensorrt.Device(gpu_id=request.device.index or 0)
        if request.options.get("python_runtime"):
            settings["use_python_runtime"] = True  # see rtx_runtime: the only runtime whose contexts we can configure
        compiled = torch_tensorrt.dynamo.compile(
            export.exported_program,
            inputs=inputs,
            kwarg_inputs=_non_tensor_kwargs(export.sample[1]),
            **settings,
        )
        return CompiledModel(module=compiled, sample=export.sample, dynamic_shapes=export.dynamic_shapes)
