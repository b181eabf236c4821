"""aitune-trt-aot: an ahead-of-time Torch-TensorRT backend for NVIDIA AITune.

Importing this package registers :class:`TorchTensorRTAotBackend` with AITune, so ``ait.load``
resolves ``TorchTensorRTAotBackend`` checkpoint entries (this package's and AITune's built-in
backend's) to it.
"""

from aitune_trt_aot.stack import ensure_tensorrt_module

ensure_tensorrt_module()  # aitune.torch imports `tensorrt`; TensorRT-RTX installs it as `tensorrt_rtx`

from aitune_trt_aot.backend import BuildError, TorchTensorRTAotBackend, TorchTensorRTAotBuildStep  # noqa: E402
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig  # noqa: E402
from aitune_trt_aot.frontends import UnsupportedInputsError  # noqa: E402
from aitune_trt_aot.settings import CompilationSettings  # noqa: E402
from aitune_trt_aot.shapes import InputShapeError  # noqa: E402
from aitune_trt_aot.stack import MissingRequirementError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BuildError",
    "CompilationSettings",
    "InputShapeError",
    "MissingRequirementError",
    "TorchTensorRTAotBackend",
    "TorchTensorRTAotBackendConfig",
    "TorchTensorRTAotBuildStep",
    "UnsupportedInputsError",
    "__version__",
]
