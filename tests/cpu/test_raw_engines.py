"""CPU: the pickling hook that writes engines as raw bytes (``formats.raw_engines``).

The class below stands in for Torch-TensorRT's ``EngineSerializer`` only in what the hook relies on (its
``serialized_info`` list and a ``__reduce__`` that base64-encodes the engine). What Torch-TensorRT itself
writes and reads is checked on the GPU (``tests/gpu/test_formats_gpu.py``).
"""

from __future__ import annotations

import base64
import pickle

import pytest

from aitune_trt_aot.formats import raw_engines
from aitune_trt_aot.formats.raw_engines import engines_pickled_raw, raw_reduce, rebuild_engine, reduce_replaced
from aitune_trt_aot.stack import torch_tensorrt_or_none

ENGINE_INDEX = 1


def decode(info: list) -> list:
    """The stock constructor: the engine comes as base64 text."""
    return [info[0], base64.b64decode(info[ENGINE_INDEX])]


def rebuild(info: list) -> list:
    """The raw constructor: the engine comes as it is."""
    return list(info)


class Serializer:
    """What the hook needs of ``EngineSerializer``."""

    def __init__(self, engine: object) -> None:
        self.serialized_info = ["name", engine]

    def __reduce__(self) -> tuple:
        return (decode, (["name", base64.b64encode(self.serialized_info[ENGINE_INDEX]).decode()],))


def _raw() -> object:
    return reduce_replaced(Serializer, raw_reduce(rebuild, ENGINE_INDEX))


def test_engines_are_pickled_raw_and_read_back() -> None:
    """The pickle holds the engine's bytes once (no base64 third), and the constructor gets them unchanged."""
    engine = b"vtrt" + bytes(range(256)) * 400
    with _raw():
        data = pickle.dumps(Serializer(engine), protocol=5)
    assert engine in data and len(data) < len(engine) + 200
    assert pickle.loads(data) == ["name", engine]
    stock = pickle.dumps(Serializer(engine), protocol=5)
    assert engine not in stock and len(stock) > len(engine) * 4 // 3
    assert pickle.loads(stock) == ["name", engine]


def test_an_engine_that_is_not_bytes_is_refused_with_the_place_to_fix() -> None:
    """Another Torch-TensorRT layout is not guessed at: the save fails and names this module."""
    with _raw(), pytest.raises(TypeError, match="index 1 .* got str.*raw_engines.py"):
        pickle.dumps(Serializer("text"), protocol=5)


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


def test_the_constructor_stays_where_saved_artifacts_name_it() -> None:
    """Every artifact written raw names ``aitune_trt_aot.formats.raw_engines.rebuild_engine``: moving it breaks them."""
    assert (rebuild_engine.__module__, rebuild_engine.__qualname__) == (raw_engines.__name__, "rebuild_engine")
    assert raw_engines.__name__ == "aitune_trt_aot.formats.raw_engines"


@pytest.mark.skipif(torch_tensorrt_or_none() is not None, reason="checks a machine without Torch-TensorRT")
def test_without_torch_tensorrt_the_hook_leaves_the_save_alone() -> None:
    """Nothing to patch: the block runs as it is."""
    with engines_pickled_raw():
        ran = True
    assert ran
