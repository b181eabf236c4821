"""``ir="fx"``: Torch-TensorRT's deprecated FX frontend (absent from TensorRT-RTX builds, so from our GPU host).

Never exercised on a GPU here; the build plan refuses ``ir="fx"`` before any work where the installed
Torch-TensorRT lacks ``fx_frontend``.
"""

from __future__ import annotations

import torch

from aitune_trt_aot.compiled import CompiledModel, graph_coverage
from aitune_trt_aot.errors import ConfigError
from aitune_trt_aot.frontends.base import CompileRequest, Frontend

# Reduced dtype -> the FX frontend's ``LowerPrecision`` member. Its lowering sets TensorRT builder flags for FP16
# (and INT8) only, and ``torch_tensorrt.compile(ir="fx")`` refuses bfloat16 itself; the plan refuses the rest.
LOWER_PRECISIONS: dict[torch.dtype | None, str] = {None: "FP32", torch.float16: "FP16"}


def lower_precision_name(reduced: torch.dtype | None) -> str:
    """The ``LowerPrecision`` member the FX frontend builds ``reduced`` with (None: fp32); never a silent fp32."""
    try:
        return LOWER_PRECISIONS[reduced]
    except KeyError:
        raise ConfigError(
            f"ir='fx' cannot build {reduced} engines: its lowering knows fp32 and fp16 only. Use ir='dynamo' for "
            f"{reduced}."
        ) from None


class FxFrontend(Frontend):
    """Lower with ``torch_tensorrt.fx.compile`` and a dynamic batch up to the recorded maximum."""

    name = "fx"
    feature = "fx_frontend"
    formats = ("torchscript",)
    positional_only = True
    accepted_settings = frozenset({"min_block_size", "workspace_size"})
    reduced_dtypes = frozenset(dtype for dtype in LOWER_PRECISIONS if dtype is not None)

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Lower the module with the FX frontend; the batch range comes from the recorded ranges."""
        from torch_tensorrt.fx import compile as fx_compile
        from torch_tensorrt.fx.utils import LowerPrecision

        example = tuple(a.to(request.device) for a in request.sample[0])
        compiled = fx_compile(
            request.module,
            list(example),
            min_acc_module_size=request.settings.min_block_size,
            max_batch_size=max(r.max_shape[0] for r in request.ranges),
            max_workspace_size=request.settings.workspace_size or 1 << 30,
            explicit_batch_dimension=True,
            lower_precision=LowerPrecision[lower_precision_name(request.options.reduced_dtype)],
            dynamic_batch=True,
        )
        return CompiledModel(module=compiled, sample=(example, {}), coverage=graph_coverage(compiled, None))
