"""What an artifact was built for, and whether this machine can run it.

TensorRT engines are not portable: they run only on the GPU architecture, TensorRT release and
Torch-TensorRT they were built with. Every artifact records :func:`build_environment`; loading refuses,
before any deserialisation, what :func:`incompatibility` finds, with both sides named.
"""

from __future__ import annotations

from typing import Any

import torch

from aitune_trt_aot.stack import current_stack

# Keys that must match exactly for engines to deserialise and run.
_MUST_MATCH = ("compute_capability", "tensorrt_flavour", "tensorrt", "torch_tensorrt")


def _device_facts(device: torch.device | None) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"gpu": None, "compute_capability": None}
    index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {"gpu": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}


def build_environment(device: torch.device | None = None) -> dict[str, Any]:
    """The GPU, TensorRT flavour and versions of this machine, as recorded in artifacts."""
    from aitune_trt_aot import __version__

    stack = current_stack()
    return {
        **_device_facts(device),
        "tensorrt_flavour": stack.flavour if stack.torch_tensorrt_version else None,  # unknown without it
        "tensorrt": stack.tensorrt_version,
        "torch_tensorrt": stack.torch_tensorrt_version,
        "torch": stack.torch_version,
        "aitune_trt_aot": __version__,
    }


def describe_environment(facts: dict[str, Any]) -> str:
    """``NVIDIA H200 (sm 9.0), TensorRT-RTX 1.6.1.120, Torch-TensorRT 2.14.0, torch 2.14.1``."""
    return (
        f"{facts.get('gpu')} (sm {facts.get('compute_capability')}), {facts.get('tensorrt_flavour')} "
        f"{facts.get('tensorrt')}, Torch-TensorRT {facts.get('torch_tensorrt')}, torch {facts.get('torch')}"
    )


def incompatibility(recorded: dict[str, Any] | None, device: torch.device | None = None) -> str | None:
    """Why engines built for ``recorded`` cannot run here, or None when they can (or nothing was recorded)."""
    if not recorded:
        return None
    here = build_environment(device)
    # A fact unknown on either side (no GPU here, Torch-TensorRT not importable) is not compared.
    differing = [
        key
        for key in _MUST_MATCH
        if recorded.get(key) is not None and here.get(key) is not None and recorded.get(key) != here.get(key)
    ]
    if not differing:
        return None
    return (
        f"it was built for {describe_environment(recorded)}, and this machine has {describe_environment(here)} "
        f"(differs in: {', '.join(differing)}). TensorRT engines run only where they were built: re-tune on this "
        "machine, or load the artifact on a machine like the one it was built on."
    )
