"""``exported_program``: the Dynamo frontend's graph with its engines, saved by ``torch_tensorrt.save``.

The engines are pickled as raw bytes (``raw_engines``): ``torch_tensorrt.load`` reads the file where this package
can be imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.compiled import CompiledModel
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.formats.raw_engines import engines_pickled_raw
from aitune_trt_aot.stack import require_torch_tensorrt

logger = logging.getLogger(__name__)


class ExportedProgramFormat(ArtifactFormat):
    """An ``ExportedProgram`` archive holding the TensorRT engines; loaded with ``torch_tensorrt.load``."""

    name = "exported_program"
    suffix = ".pt2"  # torch.export.load expects the name to end in .pt2
    runtime_settings = True  # the loaded graph holds its engine objects as attributes
    quantized = True  # the 8-bit layers are inside the engines

    def save(
        self,
        compiled: CompiledModel,
        path: Path,
        *,
        pickle_protocol: int,
        on_native_compile: Callable[[], None] | None = None,
    ) -> None:
        """Serialise the graph as is (engines raw); re-export it from the recorded call where graph surgery fails."""
        torch_tensorrt = require_torch_tensorrt()
        with engines_pickled_raw():
            try:
                torch_tensorrt.save(compiled.module, str(path), retrace=False, pickle_protocol=pickle_protocol)
            except Exception as error:
                # Graph surgery fails on some graphs: verifier errors, non-tensor inputs (KeyError), graphs with
                # PyTorch-run submodules ("'Node' object is not iterable", measured for an rfft graph on 2.14).
                logger.info(
                    "Saving without retrace failed (%s: %s); saving with retrace=True.", type(error).__name__, error
                )
                path.unlink(missing_ok=True)
                args, kwargs = compiled.sample
                torch_tensorrt.save(
                    compiled.module,
                    str(path),
                    retrace=True,
                    arg_inputs=list(args),
                    kwarg_inputs=kwargs or None,
                    dynamic_shapes=compiled.positional_dynamic_shapes(),
                    pickle_protocol=pickle_protocol,
                )

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Load the program and return its module on ``device``."""
        torch_tensorrt = require_torch_tensorrt()
        return torch_tensorrt.load(str(path)).module().to(device)
