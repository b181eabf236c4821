"""Exported programs that hold their TensorRT engines as raw bytes, not as base64 text.

Torch-TensorRT 2.14 pickles every engine of an ``exported_program`` as base64 text
(``EngineSerializer.__reduce__``), and its loader, ``_reconstruct_trt_engine``, decodes that text again
on every load. It skips the decode only for engines that start with TensorRT's magic ``ftrt``;
TensorRT-RTX engines start with ``vtrt``. For ResNet-50 that is 103 MB of engine stored as 137 MB of
text, and a decode plus a copy that took ~0.7 s of a 3.2 s profiled ``ait.load``.

While ``engines_pickled_raw`` is active, engines are pickled as their bytes with ``rebuild_engine`` as
their constructor: ``torch_tensorrt.load`` reads such a file wherever this package can be imported
(pickle imports it). Files written before keep loading through Torch-TensorRT's own constructor.
Delete this module when Torch-TensorRT stores engines without base64 (see ``stack.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)
_patch_lock = threading.RLock()  # the patch is on a class: one save at a time swaps its __reduce__


@contextmanager
def engines_pickled_raw() -> Iterator[None]:
    """While active, Torch-TensorRT's ``EngineSerializer`` pickles engines as raw bytes for ``rebuild_engine``.

    Where Torch-TensorRT has no ``EngineSerializer`` (another release), the save goes its own way.
    """
    try:
        from torch_tensorrt.dynamo.runtime._serialized_engine_layout import ENGINE_IDX
        from torch_tensorrt.dynamo.runtime._TRTEngine import EngineSerializer
    except ImportError as error:
        logger.info("Engines are saved as Torch-TensorRT writes them: %s", error)
        yield
        return
    with reduce_replaced(EngineSerializer, raw_reduce(rebuild_engine, ENGINE_IDX)):
        yield


def rebuild_engine(serialized_info: list[Any]) -> Any:
    """Pickle's constructor for an engine written raw: Torch-TensorRT's ``_reconstruct_trt_engine`` minus the decode.

    Like it, returns the C++ runtime's engine where that runtime is built in, else the Python ``TRTEngine``.
    """
    import torch
    import torch_tensorrt
    from torch_tensorrt.dynamo.runtime._TRTEngine import TRTEngine

    if torch_tensorrt.ENABLED_FEATURES.torch_tensorrt_runtime:
        return torch.classes.tensorrt.Engine(tuple(serialized_info))
    return TRTEngine(list(serialized_info))


def raw_reduce(rebuild: Callable[[list[Any]], Any], engine_index: int) -> Callable[[Any], tuple[Any, ...]]:
    """A ``__reduce__`` that hands ``rebuild`` the serializer's info with the engine left as bytes."""

    def reduce(serializer: Any) -> tuple[Any, ...]:
        info = list(serializer.serialized_info)
        if not isinstance(info[engine_index], bytes):
            raise TypeError(
                f"Expected the engine at index {engine_index} of Torch-TensorRT's serialized info to be bytes, got "
                f"{type(info[engine_index]).__name__}: this Torch-TensorRT release lays engines out differently; "
                "raw engine pickling (aitune_trt_aot/formats/raw_engines.py) needs updating for it."
            )
        return (rebuild, (info,))

    return reduce


@contextmanager
def reduce_replaced(cls: type, reduce: Callable[[Any], tuple[Any, ...]]) -> Iterator[None]:
    """Give ``cls`` the ``__reduce__`` ``reduce`` for the duration, then put its own back."""
    with _patch_lock:
        stock = cls.__dict__.get("__reduce__")
        cls.__reduce__ = reduce  # type: ignore[method-assign]
        try:
            yield
        finally:
            if stock is None:
                del cls.__reduce__
            else:
                cls.__reduce__ = stock  # type: ignore[method-assign]
