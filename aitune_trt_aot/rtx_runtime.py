"""TensorRT-RTX execution contexts that never switch to shape-specialised kernels.

TensorRT-RTX compiles kernels for each new input shape in the background ("lazy" dynamic-shape
kernel specialisation, its default) and uses them from the next call on. With TensorRT-RTX 1.4 on
Hopper GPUs those specialised kernels gave wrong results for linear layers followed by an
activation (an MLP: correct on the first call at a batch size, garbage from the second call on;
measured, see docs/known-issues.md). Torch-TensorRT 2.11's C++ runtime offers no way to choose the
strategy, so on TensorRT-RTX the backend runs engines in Torch-TensorRT's Python runtime and
recreates each execution context with the strategy set to ``NONE`` (always the generic kernels).
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from aitune_trt_aot.stack import MissingRequirementError


def _none_strategy() -> Any:
    trt = sys.modules.get("tensorrt")
    enum = getattr(trt, "DynamicShapesKernelSpecializationStrategy", None)
    if enum is None:
        raise MissingRequirementError(
            "This TensorRT-RTX has no DynamicShapesKernelSpecializationStrategy; shape-specialised kernels cannot be "
            "turned off. Install TensorRT-RTX 1.1 or newer."
        )
    return enum.NONE


def _context_without_specialisation(engine: Any) -> Any:
    config = engine.create_runtime_config()
    config.dynamic_shapes_kernel_specialization_strategy = _none_strategy()
    if config.dynamic_shapes_kernel_specialization_strategy != _none_strategy():
        raise RuntimeError("TensorRT-RTX did not accept the NONE kernel specialisation strategy.")
    try:
        return engine.create_execution_context(runtime_config=config)
    except TypeError:
        return engine.create_execution_context(config)


def pin_generic_kernels(module: nn.Module) -> int:
    """Recreate the context of every Python-runtime engine in ``module`` without kernel specialisation.

    Returns the number of engines changed. Raises when an engine cannot be changed, rather than
    leaving it to produce wrong numbers.
    """
    changed = 0
    for submodule in module.modules():
        engine = getattr(submodule, "engine", None)
        if engine is None or not hasattr(submodule, "context") or not hasattr(engine, "create_runtime_config"):
            continue
        submodule.context = _context_without_specialisation(engine)
        states = getattr(submodule, "runtime_states", None)
        if states is not None and hasattr(states, "context_changed"):
            states.context_changed = True
        changed += 1
    return changed
