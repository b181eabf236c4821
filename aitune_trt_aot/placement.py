"""Which CUDA device an artifact is loaded and run on, and the guarantee that its engines and outputs land there.

Torch-TensorRT engines carry the device they were built on, but where one is deserialised is decided by the
current CUDA device: the runtime (``core/runtime/runtime.cpp``, ``get_most_compatible_device``) picks, among the
devices of the engine's compute capability, first the current device, then the recorded one. Its calls allocate
outputs on the current device (``execute_engine.cpp``). So an artifact built on ``cuda:0`` runs on ``cuda:1`` when
it is loaded and called with ``cuda:1`` current, and otherwise runs on the wrong device without a word.

This module makes that explicit. :func:`resolve_device` refuses a device this machine does not have (an
:class:`~aitune_trt_aot.errors.ArtifactError` naming the devices it has) and gives CUDA requests their index;
:func:`current_device` is the context loads run in; :class:`PinnedRunner` runs every call with the artifact's
device current and checks, on its first call, that the outputs are on that device, raising instead of handing back
tensors from another GPU. Imports only torch: the ``.pt2`` runtime uses it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_leaves

from aitune_trt_aot.errors import ArtifactError


def _devices_here(count: int) -> str:
    if count == 0:
        return "no CUDA device"
    listed = ", ".join(f"cuda:{index}" for index in range(count))
    return f"{count} CUDA device{'s' if count > 1 else ''} ({listed})"


def resolve_device(
    requested: torch.device | str | None,
    *,
    cuda_devices: int | None = None,
    current: int | None = None,
    error: type[ArtifactError] = ArtifactError,
) -> torch.device:
    """The device to load on: ``requested`` with its CUDA index filled in (the current device's), checked to exist.

    Args:
        requested: The device asked for (``cuda``, ``cuda:1``; None: the current CUDA device). Non-CUDA devices are
            returned as they are (the CPU tests' fake formats run there; real engines refuse them elsewhere).
        cuda_devices: How many CUDA devices this machine has (default: ``torch.cuda.device_count()``).
        current: The current CUDA device's index (default: ``torch.cuda.current_device()`` where CUDA exists, else 0).
        error: The error class to raise (``Pt2LoadError`` for ``.pt2`` packages).

    Raises:
        ArtifactError: ``requested`` names a CUDA device this machine does not have.

    """
    device = torch.device("cuda") if requested is None else torch.device(requested)
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    if device.index is None:
        if current is None:
            current = torch.cuda.current_device() if count else 0
        device = torch.device("cuda", current)
    if count and device.index >= count:  # no CUDA at all: the toolkit's requirement check says what is missing
        raise error(
            f"Cannot load the TensorRT engines on {device}: this machine has {_devices_here(count)}. Pass a device it "
            "has: ait.load(..., device_map={'': 'cuda:0'}) (keys are attribute paths, '' for a tuned top module), "
            "load_pt2(path, device='cuda:0'), or under torchrun torch.cuda.set_device(local_rank) with device='cuda' "
            "(each rank its own GPU)."
        )
    return device


@contextlib.contextmanager
def current_device(device: torch.device) -> Iterator[None]:
    """Make ``device`` the current CUDA device for the duration (nothing for other devices, or without CUDA)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        yield
        return
    with torch.cuda.device(device):
        yield


def needs_pinning(device: torch.device, cuda_devices: int | None = None) -> bool:
    """Whether calls on ``device`` must pin it as current: a CUDA device on a machine with several."""
    count = torch.cuda.device_count() if cuda_devices is None else cuda_devices
    return device.type == "cuda" and count > 1


def refuse_engines_elsewhere(engine_devices: list[int | None], device: torch.device, name: str) -> None:
    """Raise :class:`ArtifactError` where a loaded engine sits on a device other than ``device`` (None: not known)."""
    elsewhere = sorted({index for index in engine_devices if index is not None and index != device.index})
    if elsewhere:
        places = ", ".join(f"cuda:{index}" for index in elsewhere)
        raise ArtifactError(
            f"{name} was loaded for {device}, but Torch-TensorRT placed its TensorRT engines on {places}: it puts an "
            "engine on the current device only where that GPU is the model the engine was built on. Load it on such "
            "a GPU, or re-tune on this one."
        )


def misplaced_outputs(outputs: Any, device: torch.device) -> list[torch.device]:
    """The devices other than ``device`` (and the host) that tensors in ``outputs`` lie on; empty when none do."""
    found = {t.device for t in tree_leaves(outputs) if isinstance(t, torch.Tensor)}
    return sorted((d for d in found if d != device and d.type != "cpu"), key=str)  # host outputs are the model's


class PinnedRunner:
    """Runs a loaded artifact with its device current, and refuses outputs that land on another device.

    Every call runs inside :func:`current_device`, so Torch-TensorRT allocates outputs on the artifact's device even
    where the caller's current device is another. The first call's outputs are checked: tensors on another device
    raise :class:`ArtifactError` (engines deserialised on the wrong GPU), never a silent wrong device.
    """

    def __init__(self, runner: Callable[..., Any], device: torch.device, name: str) -> None:
        """Wrap ``runner``, loaded for ``device``; ``name`` identifies the artifact in errors."""
        self.runner = runner
        self.device = device
        self.name = name
        self._checked = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run one call on the artifact's device; check where the first call's outputs are."""
        with current_device(self.device):
            outputs = self.runner(*args, **kwargs)
        if not self._checked:
            elsewhere = misplaced_outputs(outputs, self.device)
            if elsewhere:
                raise ArtifactError(
                    f"{self.name} was loaded for {self.device}, but its outputs are on "
                    f"{', '.join(map(str, elsewhere))}: its engines run on another device. Load it with that device "
                    "current (torch.cuda.set_device), or re-tune on it."
                )
            self._checked = True
        return outputs
