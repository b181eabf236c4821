"""``ir="fx"``: Torch-TensorRT's deprecated FX frontend (absent from TensorRT-RTX builds, so from our GPU host).

Never exercised on a GPU here; the build plan refuses ``ir="fx"`` before any work where the installed
Torch-TensorRT lacks ``fx_frontend``.
"""

from __future__ import annotations

import torch

from aitune_trt_aot.compiled import CompiledModel, graph_coverage
from aitune_trt_aot.frontends.base import CompileRequest, Frontend


class FxFrontend(Frontend):
    """Lower with ``torch_tensorrt.fx.compile`` and a dynamic batch up to the recorded maximum."""

    name = "fx"
    feature = "fx_frontend"
    formats = ("torchscript",)
    positional_only = True
    accepted_settings = frozenset({"min_block_size", "workspace_size"})

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Lower the module with the FX frontend; the batch range comes from the recorded ranges."""
        from torch_tensorrt.fx import compile as fx_compile
        from torch_tensorrt.fx.utils import LowerPrecision

        example = tuple(a.to(request.device) for a in request.sample[0])
        reduced = request.options.reduced_dtype
        compiled = fx_compile(
            request.module,
            list(example),
            min_acc_module_size=request.settings.min_block_size,
            max_batch_size=max(r.max_shape[0] for r in request.ranges),
            max_workspace_size=request.settings.workspace_size or 1 << 30,
            explicit_batch_dimension=True,
            lower_precision=LowerPrecision.FP16 if reduced == torch.float16 else LowerPrecision.FP32,
            dynamic_batch=True,
        )
        return CompiledModel(module=compiled, sample=(example, {}), coverage=graph_coverage(compiled, None))
