"""``ir="fx"``: Torch-TensorRT's FX frontend (absent from TensorRT-RTX builds).

Not exercised on this project's GPU host, whose Torch-TensorRT (TensorRT-RTX) has no FX frontend;
there ``ir="fx"`` fails at the start of the build (see ``Frontend.check_available``).
"""

from __future__ import annotations

import torch

from aitune_trt_aot.frontends.base import CompiledModel, CompileRequest, Frontend, positional_tensor_inputs


class FxFrontend(Frontend):
    """Lower with ``torch_tensorrt.fx.compile`` and a dynamic batch up to the recorded maximum."""

    name = "fx"
    feature = "fx_frontend"
    positional_only = True

    def artifact_format(self, tensorrt_rtx: bool) -> str:
        """The pickled FX module."""
        return "pickled_module"

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Lower the module with the FX frontend; the batch range comes from the graph spec."""
        from torch_tensorrt.fx import compile as fx_compile
        from torch_tensorrt.fx.utils import LowerPrecision

        example = tuple(a.to(request.device) for a in positional_tensor_inputs(request, self.name))
        precisions = set(request.settings.enabled_precisions)
        lower_precision = LowerPrecision.FP16 if torch.float16 in precisions else LowerPrecision.FP32
        compiled = fx_compile(
            request.module,
            list(example),
            min_acc_module_size=request.settings.min_block_size,
            max_batch_size=request.graph_spec.get_max_batch_size(),
            max_workspace_size=request.settings.workspace_size or 1 << 30,
            explicit_batch_dimension=True,
            lower_precision=lower_precision,
            dynamic_batch=True,
        )
        return CompiledModel(module=compiled, sample=(example, {}))
