"""TensorRT-RTX runtime settings of loaded engines: kernel specialization and the kernel cache.

TensorRT-RTX compiles kernels just in time, on an engine's first call at each input shape: 1.2-1.4 s per shape
for a dynamic-batch ResNet-50 on an H200 (2026-11-29). Its runtime cache holds the compiled kernels. The backend
keeps one per artifact, the *kernel cache*: the self-check after a build fills it, it is written beside the
artifact, stored in the checkpoint and the build cache, and loaded with the artifact. With "lazy" kernels a
reloaded ResNet-50's first calls then took 0.27, 0.08 and 0.09 s at batch 1, 8 and 32 instead of 1.38, 1.22 and
1.23 s. Eagerly specialised kernels (below) did not survive the kernel cache file: a reloaded ResNet-50 still
spent ~1 s at each new shape. In one process, engines given the same live cache do share them (a probe: 0.107 s
instead of 2.46 s for a second engine instance's first call); one with its own empty cache compiles them again.

Kernel specialization (``dynamic_shapes_kernel_specialization_strategy``): TensorRT-RTX's default, ``"lazy"``,
runs generic kernels and swaps in shape-specialised ones when a background compile finishes. A CUDA graph
captured before the swap keeps the generic kernels, and Torch-TensorRT itself refuses to capture engines with
dynamic inputs under ``"lazy"`` as unsafe. Where calls are captured the backend therefore uses ``"eager"``
(specialise on the first call at a shape, then capture): a dynamic-batch MLP's graph replay took 0.085 ms
instead of 0.149 ms.

Only engines the backend can reach in a loaded artifact get these settings: those of ``exported_program``
artifacts (Torch-TensorRT engine objects held by the graph), ``TorchTensorRTModule`` submodules, and the engines
inside a loaded ``.pt2`` package (``aot_inductor``: the package hands them out, ``pt2.engines``). Engines inside
TorchScript modules keep TensorRT-RTX's defaults. Standard TensorRT has no runtime cache or specialization
strategies: the plan does not apply them there (``plan.uses_runtime_settings``).
"""

from __future__ import annotations

import functools
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.errors import Pt2LoadError
from aitune_trt_aot.files import bytes_digest, file_digest, write_atomically
from aitune_trt_aot.pt2.engines import EngineHolder, give_settings, is_tensorrt_engine

logger = logging.getLogger(__name__)

KERNEL_SPECIALIZATIONS = ("auto", "eager", "lazy", "none")
KERNEL_CACHE_NAME = "kernels.bin"
_ENGINE_DEVICE = re.compile(r"Device: Device\(ID: (-?\d+)")


def kernel_strategy(choice: str, captured: bool) -> str:
    """TensorRT-RTX's strategy for a config's ``kernel_specialization``; ``"auto"``: eager where captured."""
    if choice == "auto":
        return "eager" if captured else "lazy"
    return choice


def reachable_engines(loaded: Any) -> list[Any]:
    """The engines of ``loaded`` whose runtime settings can be set (empty for anything else).

    Those are ``TorchTensorRTModule`` submodules, the engine objects a graph holds as attributes
    (``exported_program`` artifacts), and those a loaded ``.pt2`` package hands out (which raises
    ``Pt2LoadError`` where this torch cannot reach them).
    """
    if isinstance(loaded, EngineHolder):
        return loaded.tensorrt_engines()
    from torch_tensorrt.dynamo.runtime import TorchTensorRTModule

    if not isinstance(loaded, torch.nn.Module):
        return []
    engines: list[Any] = []
    for module in loaded.modules():
        if isinstance(module, TorchTensorRTModule):
            engines.append(module)
        elif isinstance(module, torch.fx.GraphModule):
            for node in module.graph.nodes:
                if node.op != "get_attr":
                    continue
                value = functools.reduce(getattr, node.target.split("."), module)
                if is_tensorrt_engine(value):
                    engines.append(value)
    return engines


def engine_device(engine: Any) -> int | None:
    """The CUDA device index a loaded Torch-TensorRT engine runs on; None where the engine does not say.

    Read from the engine's description (``str(engine)``: ``Device: Device(ID: 1, Name: ..., SM Capability: ...)``),
    which, unlike its serialised form, does not copy the engine. A ``TorchTensorRTModule`` is asked for its engine.
    """
    if isinstance(engine, torch.nn.Module):
        engine = getattr(engine, "engine", engine)
    try:
        found = _ENGINE_DEVICE.search(str(engine))
    except Exception:  # an engine class without this description
        return None
    return None if found is None else int(found.group(1))


def engine_devices(loaded: Any) -> list[int | None]:
    """:func:`engine_device` of each reachable engine of ``loaded`` (none where a package's cannot be reached)."""
    try:
        engines = reachable_engines(loaded)
    except Pt2LoadError:  # the activation's runtime settings warn about it
        return []
    return [engine_device(engine) for engine in engines]


def _new_kernel_cache(path: Path | None, checksum: str | None) -> tuple[Any, int]:
    """A TensorRT-RTX runtime cache filled from ``path`` when that file is present and matches ``checksum``.

    Returns the cache and how many bytes it was given. The cache only saves compile time: a missing or damaged
    file is logged and an empty cache used instead. TensorRT-RTX reads the bytes when the first engine that
    uses the cache creates its execution context; the checkpoint's build facts (GPU, TensorRT-RTX version) are
    checked before that, so it reads kernels compiled for this GPU and release.
    """
    from torch_tensorrt.runtime import RuntimeCache

    cache = RuntimeCache()
    if path is None:
        return cache, 0
    problem = None
    if not path.is_file():
        problem = "the file is missing"
    elif checksum is not None and file_digest(path) != checksum:
        problem = "its bytes do not match the checksum recorded when it was written"
    if problem is None:
        try:
            with open(path, "rb") as handle:
                size = cache.load_from_stream(handle)
            logger.info("Loaded the kernel cache %s (%d bytes).", path, size)
            return cache, size
        except Exception as error:  # TensorRT-RTX rejects a cache written by another version or GPU
            problem = f"TensorRT-RTX did not accept it ({type(error).__name__}: {error})"
            cache = RuntimeCache()
    logger.warning(
        "Not using the kernel cache %s: %s. The engines compile their kernels again on their first call at each "
        "shape (slower first calls, same results).",
        path,
        problem,
    )
    return cache, 0


def configure(loaded: Any, strategy: str, cache: Any) -> int:
    """Give every reachable engine of ``loaded`` the kernel ``strategy`` and the shared ``cache``; count them."""
    from torch_tensorrt.runtime import RuntimeSettings
    from torch_tensorrt.runtime._runtime_cache import _to_torchbind_handle

    engines = reachable_engines(loaded)
    settings = RuntimeSettings(dynamic_shapes_kernel_specialization_strategy=strategy, runtime_cache=cache)
    for engine in engines:
        if isinstance(engine, torch.ScriptObject):
            # The C++ engine class takes the settings as TensorRT's enum values and a handle to the cache.
            give_settings(engine, strategy, _to_torchbind_handle(cache))
        else:
            engine.runtime_settings = settings
    return len(engines)


@dataclass(frozen=True)
class EngineSetup:
    """What :func:`apply` gave the engines of one loaded artifact.

    Attributes:
        strategy: The kernel specialization strategy.
        engines: How many engines got the settings.
        kernel_cache: The TensorRT-RTX runtime cache they share.
        loaded_bytes: Kernel bytes given to that cache from the artifact's kernel cache file (0: none, or unusable).

    """

    strategy: str
    engines: int
    kernel_cache: Any
    loaded_bytes: int

    def report(self) -> dict[str, Any]:
        """``strategy``, ``engines`` and ``kernel_cache_loaded_bytes``, JSON-safe."""
        return {"strategy": self.strategy, "engines": self.engines, "kernel_cache_loaded_bytes": self.loaded_bytes}


NO_SETUP_REPORT: dict[str, Any] = {"strategy": None, "engines": 0, "kernel_cache_loaded_bytes": 0}


def apply(
    loaded: Any, strategy: str, kernels: Path | None, checksum: str | None, live_cache: Any = None
) -> EngineSetup:
    """Give the engines of ``loaded`` the kernel ``strategy`` and one kernel cache, filled from ``kernels``.

    ``live_cache``: a runtime cache other engines of this process filled (``pipeline.early_kernels``), used instead of
    a new one; ``kernels`` is then not read.
    """
    if live_cache is not None:
        cache, loaded_bytes = live_cache, 0
    else:
        cache, loaded_bytes = _new_kernel_cache(kernels, checksum)
    return EngineSetup(strategy, configure(loaded, strategy, cache), cache, loaded_bytes)


def new_kernel_cache() -> Any:
    """An empty TensorRT-RTX runtime cache, for engines to share."""
    return _new_kernel_cache(None, None)[0]


def kernel_cache_bytes(cache: Any) -> bytes:
    """The serialized kernels of ``cache`` (empty when no engine has used it)."""
    buffer = io.BytesIO()
    cache.save_to_stream(buffer)
    return buffer.getvalue()


def write_kernel_cache(data: bytes, path: Path) -> str:
    """Write serialized kernels to ``path`` atomically; return the file's checksum (hashed from ``data``)."""
    write_atomically(path, lambda tmp: tmp.write_bytes(data))
    return bytes_digest(data)
