"""Exported programs that hold their TensorRT engines as raw bytes, not as base64 text.

Torch-TensorRT 2.14 pickles every engine of an ``exported_program`` as base64 text
(``EngineSerializer.__reduce__``): a third more bytes to write, hash, zip and read, and a decode on every
load. Its loader, ``_reconstruct_trt_engine``, already takes raw bytes as they are when they start with
TensorRT's engine magic ``ftrt``, so a file written raw is read by a plain ``torch_tensorrt.load``, and
nothing on the loading side changes. Engines that do not start with the magic are written as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ENGINE_MAGIC = b"ftrt"

_patch_lock = threading.RLock()  # the patch is on a class: one save at a time swaps its __reduce__


@contextmanager
def engines_pickled_raw() -> Iterator[None]:
    """While active, Torch-TensorRT pickles engines that start with ``ftrt`` as raw bytes.

    A no-op on a Torch-TensorRT release without ``EngineSerializer`` (its exported programs are pickled
    some other way, which this module does not know).
    """
    try:
        from torch_tensorrt.dynamo.runtime import _TRTEngine
        from torch_tensorrt.dynamo.runtime._serialized_engine_layout import ENGINE_IDX
    except ImportError:
        yield
        return
    serializer = getattr(_TRTEngine, "EngineSerializer", None)
    reconstruct = getattr(_TRTEngine, "_reconstruct_trt_engine", None)
    if serializer is None or reconstruct is None:
        yield
        return
    with reduce_replaced(serializer, raw_reduce(serializer.__reduce__, reconstruct, ENGINE_IDX)):
        yield


def raw_reduce(
    stock_reduce: Callable[[Any], tuple[Any, ...]], reconstruct: Callable[..., Any], engine_index: int
) -> Callable[[Any], tuple[Any, ...]]:
    """A ``__reduce__`` that hands ``reconstruct`` the engine bytes unencoded, or defers to ``stock_reduce``."""

    def reduce(serializer: Any) -> tuple[Any, ...]:
        engine = serializer.serialized_info[engine_index]
        if isinstance(engine, bytes) and engine.startswith(ENGINE_MAGIC):
            return (reconstruct, (list(serializer.serialized_info),))
        return stock_reduce(serializer)

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
