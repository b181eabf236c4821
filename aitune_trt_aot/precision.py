"""Turn the precision a user asked for into settings the installed Torch-TensorRT accepts.

Torch-TensorRT 2.11 defaults to ``use_explicit_typing=True`` (and TensorRT-RTX is always strongly
typed), which rejects ``enabled_precisions`` other than fp32. What users write,
``enabled_precisions={torch.float16}``, therefore needs translating into one of two routes:

* ``autocast``: ``enable_autocast=True, autocast_low_precision_type=<dtype>``; Torch-TensorRT picks
  the layers that run in reduced precision, inputs and outputs keep their dtype.
* ``cast_module``: the module's weights are cast to the reduced dtype and its floating inputs and
  outputs are cast at the boundary (the graph itself is then typed in reduced precision).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from aitune_trt_aot.settings import normalize_precisions
from aitune_trt_aot.wrappers import with_signature

REDUCED = (torch.float16, torch.bfloat16)
SUPPORTED = (torch.float32, *REDUCED)


@dataclass(frozen=True)
class PrecisionPlan:
    """How one build obtains the requested precision.

    Attributes:
        route: ``"fp32"``, ``"autocast"``, ``"cast_module"`` or ``"weak_typing"`` (passed through as given).
        dtype: The reduced dtype, or None for fp32.
        settings: Effective ``CompilationSettings`` for the compile call.

    """

    route: str
    dtype: torch.dtype | None
    settings: Any

    def describe(self) -> str:
        """A short text for logs: the route and dtype."""
        return self.route if self.dtype is None else f"{self.route}({str(self.dtype).removeprefix('torch.')})"


def requested_dtype(settings: Any) -> torch.dtype | None:
    """The reduced dtype the settings ask for, None for fp32; unsupported precisions raise ``ValueError``."""
    precisions = normalize_precisions(settings.enabled_precisions)
    unsupported = sorted(str(p) for p in precisions if p not in SUPPORTED)
    if unsupported:
        raise ValueError(
            f"enabled_precisions {unsupported} are not supported by TorchTensorRTAotBackend: it builds fp32, fp16 "
            "and bf16 engines. int8/fp8 need a quantized model (e.g. NVIDIA ModelOpt) compiled with explicit typing."
        )
    reduced = [p for p in REDUCED if p in precisions]
    if settings.enable_autocast and settings.autocast_low_precision_type is not None:
        autocast_type = normalize_precisions({settings.autocast_low_precision_type}).pop()
        reduced = sorted(set(reduced) | {autocast_type}, key=str)
    if len(reduced) > 1:
        raise ValueError(
            f"Both {', '.join(map(str, reduced))} were requested; choose one reduced precision "
            "(enabled_precisions={torch.float16} or {torch.bfloat16})."
        )
    return reduced[0] if reduced else None


def plan_precision(settings: Any, route: str, is_tensorrt_rtx: bool, ir: str = "dynamo") -> PrecisionPlan:
    """Choose the route for the requested precision and return the effective settings.

    Args:
        settings: The user's ``CompilationSettings`` (installed class).
        route: ``"auto"``, ``"autocast"`` or ``"cast_module"`` (the config's ``precision_route``).
        is_tensorrt_rtx: Whether Torch-TensorRT is built against TensorRT-RTX (always strongly typed).
        ir: The frontend. Only ``"dynamo"`` builds strongly typed networks (autocast, cast module); the
            TorchScript and FX frontends take reduced precision as builder flags (weak typing).

    """
    dtype = requested_dtype(settings)
    fp32_only = {torch.float32}
    if dtype is None:
        return PrecisionPlan("fp32", None, dataclasses.replace(settings, enabled_precisions=fp32_only))
    if ir != "dynamo":
        if is_tensorrt_rtx:
            raise ValueError(
                f"ir={ir!r} cannot build {dtype} engines with TensorRT-RTX: its {ir} frontend sets precision by "
                "builder flags, which strongly typed TensorRT-RTX networks ignore, and fails on half-precision "
                f"graphs. Use ir='dynamo' for {dtype}, or fp32 with ir={ir!r}."
            )
        return PrecisionPlan(
            "weak_typing", dtype, dataclasses.replace(settings, enabled_precisions={torch.float32, dtype})
        )

    if not settings.use_explicit_typing and not settings.enable_autocast:
        if is_tensorrt_rtx:
            raise ValueError(
                "use_explicit_typing=False is not available with TensorRT-RTX, whose networks are strongly typed. "
                f"Leave use_explicit_typing=True and keep enabled_precisions={{{dtype}}}: the backend then builds the "
                "reduced-precision engine through autocast or a cast module (precision_route)."
            )
        # Standard TensorRT with weak typing honours enabled_precisions as given.
        return PrecisionPlan("weak_typing", dtype, settings)

    chosen = route
    if route == "auto":
        chosen = "autocast" if hasattr(settings, "enable_autocast") else "cast_module"
    if settings.enable_autocast:
        chosen = "autocast"
    if chosen == "autocast":
        effective = dataclasses.replace(
            settings,
            enabled_precisions=fp32_only,
            use_explicit_typing=True,
            enable_autocast=True,
            autocast_low_precision_type=dtype,
        )
        return PrecisionPlan("autocast", dtype, effective)
    effective = dataclasses.replace(settings, enabled_precisions=fp32_only, use_explicit_typing=True)
    if hasattr(effective, "enable_autocast"):
        effective = dataclasses.replace(effective, enable_autocast=False, autocast_low_precision_type=None)
    return PrecisionPlan("cast_module", dtype, effective)


def cast_floating(value: Any, dtype: torch.dtype) -> Any:
    """Cast every floating-point tensor in a nested structure to ``dtype``."""
    return tree_map(lambda t: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t, value)


def output_dtypes(module: nn.Module, sample: tuple[tuple, dict]) -> list[torch.dtype | None]:
    """The dtype of each output leaf (None for non-tensors) when ``module`` runs ``sample`` eagerly."""
    args, kwargs = sample
    with torch.no_grad():
        leaves, _ = tree_flatten(module(*args, **kwargs))
    return [leaf.dtype if isinstance(leaf, torch.Tensor) else None for leaf in leaves]


class PrecisionBoundary(nn.Module):
    """Keeps a reduced-precision engine's interface identical to the eager module's.

    Optionally casts floating inputs to ``input_dtype`` (the module's own weights then have that dtype),
    and casts each floating output back to the dtype eager PyTorch returned. The casts sit inside the
    compiled graph, so callers pass and receive the same dtypes as with the original module. Create it
    with :func:`precision_boundary`, which gives it the wrapped module's ``forward`` signature.
    """

    def __init__(
        self, module: nn.Module, input_dtype: torch.dtype | None, out_dtypes: list[torch.dtype | None]
    ) -> None:
        """Wrap ``module``."""
        super().__init__()
        self.module = module
        self.input_dtype = input_dtype
        self.out_dtypes = out_dtypes

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Cast inputs, run the wrapped module, cast outputs back."""
        if self.input_dtype is not None:
            args, kwargs = cast_floating((args, kwargs), self.input_dtype)
        leaves, spec = tree_flatten(self.module(*args, **kwargs))
        cast = [
            leaf.to(dtype)
            if dtype is not None and isinstance(leaf, torch.Tensor) and leaf.is_floating_point()
            else leaf
            for leaf, dtype in zip(leaves, self.out_dtypes, strict=True)
        ]
        return tree_unflatten(cast, spec)


def precision_boundary(
    module: nn.Module, input_dtype: torch.dtype | None, out_dtypes: list[torch.dtype | None]
) -> PrecisionBoundary:
    """A :class:`PrecisionBoundary` around ``module`` whose ``forward`` has ``module.forward``'s signature."""
    return with_signature(PrecisionBoundary(module, input_dtype, out_dtypes), inspect.signature(module.forward))
