"""``torchscript``: a TorchScript module with embedded engines (``torch.jit.save``/``torch.jit.load``).

The TorchScript frontend's output is saved as it is; a Dynamo-compiled graph is traced into TorchScript
by ``torch_tensorrt.save(output_format="torchscript")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.compiled import CompiledModel
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.stack import require_torch_tensorrt


class TorchScriptFormat(ArtifactFormat):
    """TorchScript archive; loading needs the Torch-TensorRT runtime (imported here)."""

    name = "torchscript"
    suffix = ".ts"
    # Not yet measured: whether torch.jit.trace keeps a quantized build whole (a quantize/dequantize node left to
    # PyTorch would be a custom op the loading process must register). Refused until a GPU run shows it works.
    quantized_note = (
        "writing INT8/FP8 builds as TorchScript has not been verified on the GPU host (docs/precision.md), so the "
        "backend does not offer it."
    )

    def save(
        self,
        compiled: CompiledModel,
        path: Path,
        *,
        pickle_protocol: int,
        on_native_compile: Callable[[], None] | None = None,
    ) -> None:
        """Write the scripted module, tracing a Dynamo graph into TorchScript first."""
        if isinstance(compiled.module, torch.jit.ScriptModule):
            torch.jit.save(compiled.module, str(path))
            return
        args, kwargs = compiled.sample
        require_torch_tensorrt().save(
            compiled.module, str(path), output_format="torchscript", arg_inputs=list(args), kwarg_inputs=kwargs or None
        )

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Register the TensorRT engine class, then load the module onto ``device``."""
        require_torch_tensorrt()
        return torch.jit.load(str(path), map_location=device)
