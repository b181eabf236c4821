"""aitune-trt-aot: an ahead-of-time Torch-TensorRT backend for NVIDIA AITune.

Importing this package registers :class:`TorchTensorRTAotBackend` with AITune, so ``ait.load``
resolves ``TorchTensorRTAotBackend`` checkpoint entries (this package's and AITune's built-in
backend's) to it.

On a deployment machine without AITune only the ``.pt2`` runtime is available:
``aitune_trt_aot.load_pt2`` (``aitune_trt_aot.pt2.runtime``), which needs neither AITune nor the
``torch_tensorrt`` Python package. Where AITune is installed but not wanted (a serving process that
only runs ``.pt2`` packages), set ``AITUNE_TRT_AOT_RUNTIME_ONLY=1`` to skip importing it.
"""

import importlib.util
import os

from aitune_trt_aot.errors import (
    AitrtAotError,
    ArtifactError,
    BuildError,
    ConfigError,
    DirectCallError,
    InputShapeError,
    MissingRequirementError,
    Pt2ExportError,
    Pt2InputError,
    Pt2LoadError,
    UnsupportedInputsError,
)
from aitune_trt_aot.pt2.runtime import Pt2Model, load_pt2
from aitune_trt_aot.threads import SerializedCalls, serialize_calls
from aitune_trt_aot.version import __version__

__all__ = [
    "AitrtAotError",
    "ArtifactError",
    "BuildError",
    "ConfigError",
    "DirectCallError",
    "InputShapeError",
    "MissingRequirementError",
    "Pt2ExportError",
    "Pt2InputError",
    "Pt2LoadError",
    "Pt2Model",
    "SerializedCalls",
    "UnsupportedInputsError",
    "__version__",
    "load_pt2",
    "serialize_calls",
]


def _aitune_wanted() -> bool:
    if os.environ.get("AITUNE_TRT_AOT_RUNTIME_ONLY", "0") not in ("", "0"):
        return False
    try:
        return importlib.util.find_spec("aitune") is not None
    except (ImportError, ValueError):  # a process that blocks aitune on purpose
        return False


if _aitune_wanted():
    from aitune_trt_aot.stack import ensure_tensorrt_module

    ensure_tensorrt_module()  # aitune.torch imports `tensorrt`; TensorRT-RTX installs it as `tensorrt_rtx`

    from aitune_trt_aot.backend import TorchTensorRTAotBackend, TorchTensorRTAotBuildStep
    from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
    from aitune_trt_aot.direct import DirectCall, direct_call
    from aitune_trt_aot.pt2.export import save_pt2
    from aitune_trt_aot.quantization import QuantizationConfig
    from aitune_trt_aot.safe_save import load, save
    from aitune_trt_aot.settings import CompilationSettings

    __all__ += [
        "CompilationSettings",
        "DirectCall",
        "QuantizationConfig",
        "TorchTensorRTAotBackend",
        "TorchTensorRTAotBackendConfig",
        "TorchTensorRTAotBuildStep",
        "direct_call",
        "load",
        "save",
        "save_pt2",
    ]

from aitune_trt_aot.gc_freeze import freeze_import_time_objects  # noqa: E402  (after every import above)

freeze_import_time_objects()
