"""What the installed TensorRT stack offers, and how to reach it.

Everything that touches ``torch_tensorrt`` goes through here, so the rest of the package can be
imported, configured and tested on machines that have no GPU and no Torch-TensorRT.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from types import ModuleType

import torch


class MissingRequirementError(RuntimeError):
    """A build or load step needs something this machine does not have (GPU, Torch-TensorRT, frontend)."""


def ensure_tensorrt_module() -> None:
    """Make ``import tensorrt`` work, which ``aitune.torch`` needs at import time.

    Standard TensorRT provides the module itself. TensorRT-RTX installs it as ``tensorrt_rtx``;
    Torch-TensorRT aliases it to ``tensorrt`` when it is imported, which we do here the same way
    without importing Torch-TensorRT (that import fails on machines without an NVIDIA driver).
    """
    if "tensorrt" in sys.modules:
        return
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            importlib.import_module("tensorrt")
            return
        except ImportError:
            sys.modules.pop("tensorrt", None)
    if importlib.util.find_spec("tensorrt_rtx") is not None:
        sys.modules["tensorrt"] = importlib.import_module("tensorrt_rtx")


@cache
def _import_torch_tensorrt() -> ModuleType | str:
    try:
        return importlib.import_module("torch_tensorrt")
    except Exception as error:  # Torch-TensorRT raises plain Exception when its libraries are missing
        return f"{type(error).__name__}: {error}"


def torch_tensorrt_or_none() -> ModuleType | None:
    """Return the ``torch_tensorrt`` module, or None where it cannot be imported here."""
    module = _import_torch_tensorrt()
    return module if isinstance(module, ModuleType) else None


def require_torch_tensorrt() -> ModuleType:
    """Return ``torch_tensorrt`` or raise an error that says why it is missing and how to get it."""
    module = _import_torch_tensorrt()
    if isinstance(module, ModuleType):
        return module
    raise MissingRequirementError(
        "Torch-TensorRT is not usable on this machine "
        f"({module}). Install it with `pip install aitune-trt-aot[tensorrt]` (standard TensorRT, needs "
        "NVIDIA's package index) or `pip install aitune-trt-aot[tensorrt-rtx]` (TensorRT-RTX from PyPI), "
        "on a machine with an NVIDIA GPU and driver."
    )


def require_cuda() -> None:
    """Raise a clear error unless PyTorch sees a CUDA GPU."""
    if not torch.cuda.is_available():
        raise MissingRequirementError(
            "No CUDA GPU is available to PyTorch (torch.cuda.is_available() is False). Building and running "
            "TensorRT engines needs an NVIDIA GPU with its driver and a CUDA build of PyTorch."
        )


def enabled_features() -> dict[str, bool]:
    """Torch-TensorRT's feature flags (frontends, runtimes), or an empty dict without Torch-TensorRT."""
    module = torch_tensorrt_or_none()
    if module is None:
        return {}
    return dict(module.ENABLED_FEATURES._asdict())


def is_tensorrt_rtx() -> bool:
    """True when the installed Torch-TensorRT is built against TensorRT-RTX."""
    return bool(enabled_features().get("tensorrt_rtx", False))


def stack_description() -> str:
    """One line naming the installed versions, for logs and error messages."""
    module = torch_tensorrt_or_none()
    if module is None:
        return f"torch {torch.__version__}, Torch-TensorRT not importable"
    flavour = "TensorRT-RTX" if is_tensorrt_rtx() else "TensorRT"
    trt = sys.modules.get("tensorrt")
    return (
        f"torch {torch.__version__}, Torch-TensorRT {module.__version__}, {flavour} {getattr(trt, '__version__', '?')}"
    )
