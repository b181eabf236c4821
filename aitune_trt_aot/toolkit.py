"""What builds and activations take from the machine, as one value that can be swapped: requirements and the stack.

The build pipeline (``aitune_trt_aot.pipeline``) and activation (``aitune_trt_aot.activation``) never call
``require_torch_tensorrt`` or ``require_cuda`` themselves: they call the :class:`Toolkit` they are given. The backend
uses :data:`GPU_TOOLKIT`. The CPU tests pass one whose requirements every machine meets, with a fake frontend and
artifact format registered, to drive whole builds on the CPU (``tests/support/fake_build.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from aitune_trt_aot.compat import device_facts
from aitune_trt_aot.stack import Stack, current_stack, require_cuda, require_torch_tensorrt


@dataclass(frozen=True)
class Toolkit:
    """The machine-dependent parts of a build and of an activation.

    Attributes:
        require_build: Raises ``MissingRequirementError`` where nothing can be built; returns the ``torch_tensorrt``
            module frontends compile with (None where the frontends need none).
        require_run: Raises ``MissingRequirementError`` where a loaded artifact cannot run (no CUDA).
        stack: The installed stack, as the plan judges it.
        gpu: The build device's name and compute capability (``compat.device_facts``: ``{"gpu": ...,
            "compute_capability": "9.0"}``, None values where unknown), as the plan judges FP8 by it.

    """

    require_build: Callable[[], ModuleType | None]
    require_run: Callable[[], None]
    stack: Callable[[], Stack]
    gpu: Callable[[torch.device | None], dict[str, Any]] = device_facts


def _require_gpu_build() -> ModuleType:
    """Torch-TensorRT on a supported stack, and a CUDA GPU (in that order: the first missing one is named)."""
    torch_tensorrt = require_torch_tensorrt()
    require_cuda()
    return torch_tensorrt


GPU_TOOLKIT = Toolkit(require_build=_require_gpu_build, require_run=require_cuda, stack=current_stack)
