"""What an artifact was built for, and whether this machine can run it.

TensorRT engines are not portable: they run only on the GPU architecture, TensorRT release and
Torch-TensorRT they were built with. Every artifact records :func:`build_environment`; loading refuses,
before any deserialisation, what :func:`incompatibility` finds, with both sides named. ``.pt2`` packages are
checked by the same rule (:func:`mismatch` with ``PT2_MUST_MATCH``) in ``pt2.runtime.load_pt2`` (``pt2.package``),
against facts found without importing Torch-TensorRT (``pt2.installed``).
"""

from __future__ import annotations

from typing import Any

import torch

from aitune_trt_aot.stack import current_stack, version_tuple
from aitune_trt_aot.version import __version__

# Keys that must match for engines to deserialise and run.
MUST_MATCH = ("compute_capability", "tensorrt_flavour", "tensorrt", "torch_tensorrt")
# A .pt2 package also holds native code compiled against LibTorch, so torch must be the same release too.
PT2_MUST_MATCH = (*MUST_MATCH, "torch")


def device_facts(device: torch.device | None = None) -> dict[str, Any]:
    """``gpu`` and ``compute_capability`` of ``device`` (default: the current CUDA device); both None without CUDA."""
    if not torch.cuda.is_available():
        return {"gpu": None, "compute_capability": None}
    index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


def build_environment(device: torch.device | None = None) -> dict[str, Any]:
    """The GPU, TensorRT flavour and versions of this machine, as recorded in artifacts."""
    stack = current_stack()
    return {
        **device_facts(device),
        "tensorrt_flavour": stack.flavour if stack.torch_tensorrt_version else None,  # unknown without it
        "tensorrt": stack.tensorrt_version,
        "torch_tensorrt": stack.torch_tensorrt_version,
        "torch": stack.torch_version,
        "aitune_trt_aot": __version__,
    }


def _fact(facts: dict[str, Any], key: str) -> str:
    value = facts.get(key)
    return "unknown" if value is None else str(value)


def describe_environment(facts: dict[str, Any]) -> str:
    """``NVIDIA H200 (sm 9.0), TensorRT-RTX 1.6.1.120, Torch-TensorRT 2.14.0, torch 2.14.1``; None facts: unknown."""
    if facts.get("gpu") is None and facts.get("compute_capability") is None:
        device = "GPU unknown"
    else:
        device = f"{_fact(facts, 'gpu')} (sm {_fact(facts, 'compute_capability')})"
    return (
        f"{device}, {facts.get('tensorrt_flavour') or 'TensorRT'} {_fact(facts, 'tensorrt')}, "
        f"Torch-TensorRT {_fact(facts, 'torch_tensorrt')}, torch {_fact(facts, 'torch')}"
    )


def _comparable(key: str, value: Any) -> Any:
    """The part of a fact that must match: torch's ``(major, minor)`` (None if unparsable), any other fact whole."""
    if key != "torch" or value is None:
        return value
    release = version_tuple(str(value))
    return None if release == (0, 0) else release


def differing_facts(recorded: dict[str, Any], here: dict[str, Any], keys: tuple[str, ...] = MUST_MATCH) -> list[str]:
    """The ``keys`` in which ``recorded`` and ``here`` differ; a fact unknown on either side is not compared."""
    differing = []
    for key in keys:
        built, present = _comparable(key, recorded.get(key)), _comparable(key, here.get(key))
        if built is not None and present is not None and built != present:
            differing.append(key)
    return differing


def mismatch(recorded: dict[str, Any] | None, here: dict[str, Any], keys: tuple[str, ...] = MUST_MATCH) -> str | None:
    """``it was built for ..., and this machine has ... (differs in: ...)``, or None when nothing known differs."""
    if not recorded:
        return None
    differing = differing_facts(recorded, here, keys)
    if not differing:
        return None
    return (
        f"it was built for {describe_environment(recorded)}, and this machine has {describe_environment(here)} "
        f"(differs in: {', '.join(differing)})"
    )


def incompatibility(recorded: dict[str, Any] | None, device: torch.device | None = None) -> str | None:
    """Why engines built for ``recorded`` cannot run here, or None when they can (or nothing was recorded)."""
    if not recorded:
        return None
    problem = mismatch(recorded, build_environment(device))
    if problem is None:
        return None
    return (
        f"{problem}. TensorRT engines run only where they were built: re-tune on this machine, or load the "
        "artifact on a machine like the one it was built on."
    )
