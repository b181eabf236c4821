"""``ir="ts"``: capture with TorchScript (trace or script), compile with Torch-TensorRT's TorchScript frontend."""

from __future__ import annotations

import logging
from typing import Any

import torch
from aitune.torch.utils.shapes import prepare_export_sample

from aitune_trt_aot import hints
from aitune_trt_aot.compiled import CompiledModel, script_coverage
from aitune_trt_aot.errors import BuildError
from aitune_trt_aot.frontends.base import CompileRequest, Frontend

logger = logging.getLogger(__name__)

# CompilationSettings fields the TorchScript frontend understands, under its own names.
_TS_SETTINGS = {
    "workspace_size": "workspace_size",
    "min_block_size": "min_block_size",
    "require_full_compilation": "require_full_compilation",
    "truncate_double": "truncate_long_and_double",
    "disable_tf32": "disable_tf32",
    "sparse_weights": "sparse_weights",
    "num_avg_timing_iters": "num_avg_timing_iters",
    "torch_executed_ops": "torch_executed_ops",
}


def _capture(module: torch.nn.Module, example: tuple[torch.Tensor, ...], how: str) -> torch.jit.ScriptModule:
    try:
        with torch.no_grad():
            if how == "script":
                return torch.jit.script(module)
            return torch.jit.trace(module, example, check_trace=False)
    except Exception as error:
        other = "script" if how == "trace" else "trace"
        raise BuildError(
            f"TorchScript capture with torch.jit.{how} failed for {type(module).__name__}: {error}. "
            + hints.for_failed_capture(other)
        ) from error


class TorchScriptFrontend(Frontend):
    """Trace (default) or script the module, then ``torch_tensorrt.ts.compile`` with min/opt/max ranges."""

    name = "ts"
    aliases = ("torchscript", "torch_script")
    feature = "torchscript_frontend"
    formats = ("torchscript",)
    positional_only = True
    accepted_settings = frozenset(_TS_SETTINGS)

    def compile(self, request: CompileRequest) -> CompiledModel:
        """Capture the module as TorchScript and replace its convertible parts with TensorRT engines."""
        torch_tensorrt = request.torch_tensorrt
        # A batch of at least 2 keeps traced reshapes from baking in a batch of 1.
        args, _ = prepare_export_sample(request.sample, request.graph_spec)
        example = tuple(a.to(request.device) for a in args)
        scripted = _capture(request.module, example, request.options.ts_capture)
        options: dict[str, Any] = {ts_name: getattr(request.settings, name) for name, ts_name in _TS_SETTINGS.items()}
        options["torch_executed_ops"] = [str(op) for op in options["torch_executed_ops"]]
        reduced = request.options.reduced_dtype
        options["enabled_precisions"] = {torch.float32} if reduced is None else {torch.float32, reduced}
        compiled = torch_tensorrt.ts.compile(
            scripted,
            inputs=request.trt_inputs(),
            device=torch_tensorrt.Device(gpu_id=request.device.index or 0),
            **options,
        )
        return CompiledModel(module=compiled, sample=(example, {}), coverage=script_coverage(compiled))
