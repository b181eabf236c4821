"""``pickled_module``: a compiled module that runs in Torch-TensorRT's Python runtime, pickled with ``torch.save``.

Used for the FX frontend, and for the dynamo frontend on TensorRT-RTX (see ``rtx_runtime``).
"""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.frontends.base import CompiledModel
from aitune_trt_aot.rtx_runtime import pin_generic_kernels
from aitune_trt_aot.stack import is_tensorrt_rtx, require_torch_tensorrt


def rebuild_python_engine_module(
    serialized_engine: bytes,
    input_names: list[str],
    output_names: list[str],
    name: str,
    settings: Any,
    weight_name_map: Any,
    requires_output_allocator: bool,
    symbolic_shape_expressions: Any,
) -> nn.Module:
    """Unpickling target: a Torch-TensorRT Python-runtime engine module built from its constructor arguments."""
    from torch_tensorrt.dynamo.runtime import PythonTorchTensorRTModule

    return PythonTorchTensorRTModule(
        serialized_engine,
        input_names,
        output_names,
        name=name,
        settings=settings,
        weight_name_map=weight_name_map,
        requires_output_allocator=requires_output_allocator,
        symbolic_shape_expressions=symbolic_shape_expressions,
    )


def _reduce_python_engine_module(module: nn.Module) -> tuple:
    # The module's own __getstate__ keeps runtime objects pickle cannot store (TensorRT Dims, CUDA device
    # properties); its constructor arguments are all it needs, and __init__ deserialises the engine again.
    return rebuild_python_engine_module, (
        module.serialized_engine,
        module.input_names,
        module.output_names,
        module.name,
        module.settings,
        module.weight_name_map,
        module.requires_output_allocator,
        module.symbolic_shape_expressions,
    )


def _pickle_module() -> SimpleNamespace:
    """A ``pickle_module`` for ``torch.save`` that stores Python-runtime engine modules by their arguments."""
    table = dict(copyreg.dispatch_table)
    try:
        from torch_tensorrt.dynamo.runtime import PythonTorchTensorRTModule

        table[PythonTorchTensorRTModule] = _reduce_python_engine_module
    except ImportError:
        pass

    class Pickler(pickle.Pickler):
        dispatch_table = table

    return SimpleNamespace(Pickler=Pickler, __name__="pickle")


class PickledModuleFormat(ArtifactFormat):
    """A ``GraphModule`` with Python-runtime TensorRT engines, pickled whole."""

    name = "pickled_module"
    suffix = ".pt"
    runtime = "python"

    def save(self, compiled: CompiledModel, path: Path, *, pickle_protocol: int) -> None:
        """Pickle the module (TRT modules serialise their engines in ``__getstate__``)."""
        torch.save(compiled.module, str(path), pickle_module=_pickle_module(), pickle_protocol=pickle_protocol)

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Unpickle the module (this runs Torch-TensorRT code: load only files you trust).

        On TensorRT-RTX its engines' contexts are recreated without shape-specialised kernels.
        """
        require_torch_tensorrt()
        with torch.cuda.device(device):
            module = torch.load(str(path), map_location=device, weights_only=False)
        if is_tensorrt_rtx():
            pin_generic_kernels(module)
        return module
