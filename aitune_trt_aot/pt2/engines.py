"""The TensorRT engines inside a loaded ``.pt2`` package: reach them, and give them TensorRT-RTX runtime settings.

AOTInductor deserialises a package's engines as Torch-TensorRT ``tensorrt::Engine`` TorchBind objects held by the
runner's proxy executor. torch 2.14's ``AOTIModelPackageLoader.get_custom_objs()`` returns those live objects
(``model_package_loader.h``: changing them "will affect subsequent run() invocations"); the engine class's TorchBind
method ``update_runtime_settings(kernel_strategy, cuda_graph_strategy, runtime_cache)`` takes the settings as
TensorRT-RTX's enum values and an optional ``torch.classes.tensorrt.RuntimeCacheHandle``
(Torch-TensorRT ``core/runtime/register_jit_hooks.cpp``). Both work without importing ``torch_tensorrt``, so
``load_pt2`` uses them too. The settings are read when an engine creates its execution context, so they must be
given before the first call (and before any CUDA-graph capture).

Where the loader has no ``get_custom_objs`` (another torch release), :func:`package_engines` raises
:class:`~aitune_trt_aot.errors.Pt2LoadError` and callers keep TensorRT-RTX's defaults with one warning.
Imports only torch: the ``.pt2`` runtime uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from aitune_trt_aot.errors import Pt2LoadError

ENGINE_CLASS = "tensorrt.Engine"  # the end of the qualified name of Torch-TensorRT's TorchBind engine class
# TensorRT-RTX's DynamicShapesKernelSpecializationStrategy values, as Torch-TensorRT 2.14's private
# runtime._runtime_config._DYNAMIC_SHAPES_KERNEL_STRATEGY_MAP has them (copied: torch_tensorrt is not imported here).
KERNEL_STRATEGY_CODES = {"lazy": 0, "eager": 1, "none": 2}
CUDA_GRAPH_STRATEGY_DISABLED = 0  # TensorRT-RTX's CudaGraphStrategy::kDISABLED: no graphs of TensorRT-RTX's own


def is_tensorrt_engine(value: Any) -> bool:
    """Whether ``value`` is a Torch-TensorRT engine object (a ``tensorrt::Engine`` TorchBind object)."""
    return isinstance(value, torch.ScriptObject) and value._type().qualified_name().endswith(ENGINE_CLASS)


def package_engines(loader: Any, path: Path) -> list[Any]:
    """The live engine objects of a loaded package (``loader``: its ``AOTIModelPackageLoader``), in name order.

    Raises:
        Pt2LoadError: this torch's loader cannot hand out a package's custom objects.

    """
    try:
        custom_objects = loader.get_custom_objs()
    except (AttributeError, RuntimeError, TypeError) as error:
        raise Pt2LoadError(
            f"The TensorRT engines inside {path} cannot be reached ({type(error).__name__}: {error}): this torch's "
            "AOTIModelPackageLoader has no working get_custom_objs (torch 2.14 has it). They keep TensorRT-RTX's "
            "default runtime settings: slower first calls at each shape, same results."
        ) from error
    return [custom_objects[name] for name in sorted(custom_objects) if is_tensorrt_engine(custom_objects[name])]


def give_settings(engine: Any, strategy: str, runtime_cache: Any = None) -> None:
    """Give one engine object the kernel specialization ``strategy`` and ``runtime_cache`` (a TorchBind handle).

    TensorRT-RTX's own CUDA graphs stay off: the backend captures calls itself (``cuda_graphs``).
    """
    engine.update_runtime_settings(KERNEL_STRATEGY_CODES[strategy], CUDA_GRAPH_STRATEGY_DISABLED, runtime_cache)


@runtime_checkable
class EngineHolder(Protocol):
    """A loaded artifact that hands out its engine objects itself (a loaded ``.pt2`` package: ``Pt2Model``)."""

    def tensorrt_engines(self) -> list[Any]:
        """The live engine objects; raises :class:`Pt2LoadError` where they cannot be reached."""
        ...
