"""Turn the precision a user asked for (``config.precision``) into settings the installed Torch-TensorRT accepts.

Torch-TensorRT 2.14's dynamo path builds strongly typed networks only (``CompilationSettings`` has no
``enabled_precisions``), so a reduced precision is obtained by one of two routes:

* ``autocast``: ``enable_autocast=True, autocast_low_precision_type=<dtype>``; Torch-TensorRT picks
  the layers that run in reduced precision, inputs and outputs keep their dtype.
* ``cast_module``: the module's weights are cast to the reduced dtype and its floating inputs and
  outputs are cast at the boundary (the graph itself is then typed in reduced precision).

Frontends that do not type the network (``Frontend.typed_precision`` False: TorchScript, FX) take builder-flag
precisions (``weak_typing``), which only standard TensorRT honours. INT8 and FP8 (``quantized``) are typed by the
quantize/dequantize nodes ModelOpt puts into a copy of the module cast to the unquantized layers' precision
(``pipeline/quantize.py`` builds that module, boundary included). What cannot be built is refused by the plan.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from aitune.torch.utils.module import move_tensors_to_device
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from aitune_trt_aot.settings import to_torch_dtype
from aitune_trt_aot.wrappers import with_signature

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # config.precision -> reduced dtype


@dataclass(frozen=True)
class PrecisionPlan:
    """How one build obtains the requested precision.

    Attributes:
        route: ``"fp32"``, ``"autocast"``, ``"cast_module"``, ``"weak_typing"`` (TorchScript builder flags) or
            ``"quantized"`` (ModelOpt's quantize/dequantize nodes).
        dtype: The reduced dtype, or None for fp32; for ``quantized``, that of the layers left unquantized.
        settings: Effective ``CompilationSettings`` for the compile call.
        quantized: ``"int8"`` or ``"fp8"`` for the ``quantized`` route, else None.

    """

    route: str
    dtype: torch.dtype | None
    settings: Any
    quantized: str | None = None

    def describe(self) -> str:
        """A short text for logs: the route and dtype (``int8(rest float16)`` for a quantized build)."""
        dtype = str(self.dtype or torch.float32).removeprefix("torch.")
        if self.quantized is not None:
            return f"{self.quantized}(rest {dtype})"
        return self.route if self.dtype is None else f"{self.route}({dtype})"


def requested_dtypes(precision: str, settings: Any) -> set[torch.dtype]:
    """The reduced dtypes asked for by ``precision`` and by the settings' own autocast fields (empty for fp32).

    More than one is a conflict the plan refuses (``aitune_trt_aot.plan``).
    """
    asked = PRECISIONS.get(precision)  # int8, fp8: the layers left unquantized are typed by the quantization
    reduced = set() if asked is None else {asked}
    if settings.enable_autocast and settings.autocast_low_precision_type is not None:
        reduced.add(to_torch_dtype(settings.autocast_low_precision_type))
    return reduced


def plan_precision(dtype: torch.dtype | None, settings: Any, route: str, typed: bool) -> PrecisionPlan:
    """Choose the route for the reduced ``dtype`` (None: fp32) and return the effective settings.

    Args:
        dtype: The one reduced dtype asked for (:func:`requested_dtypes`), None for fp32.
        settings: The user's ``CompilationSettings`` (installed class).
        route: ``"auto"``, ``"autocast"`` or ``"cast_module"`` (the config's ``precision_route``).
        typed: Whether the frontend types reduced precision into the network (autocast, cast module); a frontend
            that does not takes it as builder flags (weak typing), which the plan refuses on strongly typed stacks.

    """
    if dtype is None:
        return PrecisionPlan("fp32", None, settings)
    if not typed:
        return PrecisionPlan("weak_typing", dtype, settings)
    chosen = "autocast" if route == "auto" or settings.enable_autocast else route
    if chosen == "autocast":
        effective = dataclasses.replace(settings, enable_autocast=True, autocast_low_precision_type=dtype)
        return PrecisionPlan("autocast", dtype, effective)
    effective = dataclasses.replace(settings, enable_autocast=False, autocast_low_precision_type=None)
    return PrecisionPlan("cast_module", dtype, effective)


def plan_quantized(precision: str, dtype: torch.dtype | None, settings: Any) -> PrecisionPlan:
    """The route of an INT8/FP8 build whose unquantized layers compute in ``dtype`` (None: fp32).

    The network is typed by the quantize/dequantize nodes and the module's own dtype, so autocast stays off.
    """
    effective = dataclasses.replace(settings, enable_autocast=False, autocast_low_precision_type=None)
    return PrecisionPlan("quantized", dtype, effective, quantized=precision)


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


def module_for(
    precision: PrecisionPlan, module: nn.Module, sample: tuple[tuple, dict], device: torch.device
) -> nn.Module:
    """``module`` as the frontend compiles it under ``precision``.

    Unchanged for fp32, builder flags and quantized builds (the quantize step made the module, boundary included);
    else behind a :class:`PrecisionBoundary` that returns eager's output dtypes (for ``cast_module``, around a cast copy
    of ``module``).
    """
    if precision.dtype is None or precision.route in ("weak_typing", "quantized"):
        return module
    out_dtypes = output_dtypes(module, move_tensors_to_device(sample, device))
    if precision.route == "cast_module":
        # Cast a copy: AITune may still run the original module (eager fallback, other backends).
        return precision_boundary(copy.deepcopy(module).to(precision.dtype), precision.dtype, out_dtypes)
    return precision_boundary(module, None, out_dtypes)
