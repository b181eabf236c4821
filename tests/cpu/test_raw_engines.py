"""CPU: the pickling hook that writes engines as raw bytes (``formats.raw_engines``).

The class below stands in for Torch-TensorRT's ``EngineSerializer`` only in what the hook relies on (its
``serialized_info`` list and a ``__reduce__`` that base64-encodes the engine). What Torch-TensorRT itself
writes and reads is checked on the GPU (``tests/gpu/test_formats_gpu.py``).
"""

from __future__ import annotations

import base64
import pickle

import pytest

from aitune_trt_aot.formats.raw_engines import ENGINE_MAGIC, engines_pickled_raw, raw_reduce, reduce_replaced
from aitune_trt_aot.stack import torch_tensorrt_or_none

ENGINE_INDEX = 1


def rebuild(info: list) -> list:
    """Like Torch-TensorRT's loader: bytes with the magic stay as they are, anything else is base64 text."""
    engine = info[ENGINE_INDEX]
    if not (isinstance(engine, bytes) and engine.startswith(ENGINE_MAGIC)):
        engine = base64.b64decode(engine)
    return [info[0], engine]


class Serializer:
    """What the hook needs of ``EngineSerializer``."""

    def __init__(self, engine: bytes) -> None:
        self.serialized_info = ["name", engine]

    def __reduce__(self) -> tuple:
        return (rebuild, (["name", base64.b64encode(self.serialized_info[ENGINE_INDEX]).decode()],))


def _raw() -> object:
    return reduce_replaced(Serializer, raw_reduce(Serializer.__reduce__, rebuild, ENGINE_INDEX))


def test_engines_with_the_magic_are_pickled_raw_and_read_back() -> None:
    """The pickle holds the engine's bytes once (no base64 third), and the loader gets them unchanged."""
    engine = ENGINE_MAGIC + bytes(range(256)) * 400
    with _raw():
        data = pickle.dumps(Serializer(engine), protocol=5)
    assert engine in data and len(data) < len(engine) + 200
    assert pickle.loads(data) == ["name", engine]
    stock = pickle.dumps(Serializer(engine), protocol=5)
    assert engine not in stock and len(stock) > len(engine) * 4 // 3
    assert pickle.loads(stock) == ["name", engine]


def test_engines_without_the_magic_keep_the_stock_encoding() -> None:
    """Bytes the loader would decode as base64 are never written raw."""
    engine = b"other" + bytes(100)
    with _raw():
        data = pickle.dumps(Serializer(engine), protocol=5)
    assert data == pickle.dumps(Serializer(engine), protocol=5)
    assert pickle.loads(data) == ["name", engine]


def test_the_stock_reduce_is_back_after_the_save_even_when_it_raised() -> None:
    """The swap lasts for the ``with`` block only, and a class without a ``__reduce__`` of its own gets none."""
    stock = Serializer.__dict__["__reduce__"]
    with pytest.raises(RuntimeError, match="save failed"), _raw():
        raise RuntimeError("save failed")
    assert Serializer.__dict__["__reduce__"] is stock

    class Plain:
        pass

    with reduce_replaced(Plain, lambda _: (Plain, ())):
        assert "__reduce__" in Plain.__dict__
    assert "__reduce__" not in Plain.__dict__


@pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without Torch-TensorRT")
def test_without_torch_tensorrt_the_hook_is_a_no_op() -> None:
    """Nothing to patch: the block runs as it is."""
    with engines_pickled_raw():
        ran = True
    assert ran
