"""``QuantizationConfig``: how a ``precision="int8"`` or ``"fp8"`` build is quantized, calibrated and checked.

INT8 and FP8 engines come from explicit quantize/dequantize (Q/DQ) nodes that NVIDIA ModelOpt
(``nvidia-modelopt``, the optional extra ``aitune-trt-aot[quant]``) inserts into a copy of the module, calibrated
on the calls AITune recorded (``pipeline/quantize.py``); Torch-TensorRT converts those nodes, and TensorRT runs the
layers between them in 8 bits. The layers ModelOpt leaves unquantized run in ``unquantized_precision``.

This module holds the user's setting and the names around it; it imports ModelOpt only when asked to
(:func:`require_modelopt`, :func:`quantized_export`), so configs are made on machines without it. What cannot be
built where is ruled in ``aitune_trt_aot.plan``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aitune_trt_aot.errors import ConfigError, MissingRequirementError

# precision= value -> the prefix of the ModelOpt recipes (``mtq.<PREFIX>_..._CFG``) that quantize to it.
QUANTIZED_PRECISIONS = {"int8": "INT8", "fp8": "FP8"}
DEFAULT_RECIPES = {"int8": "INT8_DEFAULT_CFG", "fp8": "FP8_DEFAULT_CFG"}
UNQUANTIZED_PRECISIONS = ("fp16", "bf16", "fp32")
_PRECISION_ALIASES = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32"}
# calibration_samples=None calibrates on every recorded call of the graph, up to this many (evenly spaced).
CALIBRATION_CAP = 64
# FP8 matrix multiplications need compute capability 8.9 (Ada) or newer (TensorRT-RTX's guide; H100/H200: 9.0).
FP8_MIN_CAPABILITY = (8, 9)
INSTALL_COMMAND = 'pip install "aitune-trt-aot[quant]"'


@dataclass(frozen=True)
class AccuracyThresholds:
    """The self-check's bounds for an 8-bit build, per output, against eager PyTorch.

    Attributes:
        min_cosine: Smallest cosine similarity of the flattened output to eager's.
        max_relative_error: Largest ``||output - eager|| / ||eager||`` (L2 norms over the whole output).

    """

    min_cosine: float
    max_relative_error: float


# Defaults per precision (docs/precision.md). Loose enough for post-training quantization of a healthy model,
# tight enough that an engine returning noise, zeros or a scaled output never passes.
DEFAULT_THRESHOLDS = {
    "int8": AccuracyThresholds(min_cosine=0.99, max_relative_error=0.15),
    "fp8": AccuracyThresholds(min_cosine=0.99, max_relative_error=0.15),
}


def is_quantized(precision: str) -> bool:
    """Whether ``precision`` (a config value) is built by quantization."""
    return precision in QUANTIZED_PRECISIONS


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"quantization {name} must be a number or None, got {value!r}.")
    if not low <= value <= high:
        raise ConfigError(f"quantization {name} must lie in [{low:g}, {high:g}], got {value!r}.")


@dataclass(frozen=True)
class QuantizationConfig:
    """How ``precision="int8"`` or ``"fp8"`` is built: recipe, calibration, what stays unquantized, accuracy bounds.

    Attributes:
        recipe: The name of a ModelOpt recipe, one of ``modelopt.torch.quantization``'s ``*_CFG`` dicts of the same
            precision (``"INT8_SMOOTHQUANT_CFG"``, ...). None (default): ``INT8_DEFAULT_CFG`` or ``FP8_DEFAULT_CFG``.
        calibration_samples: How many of the recorded calls of the graph calibrate, evenly spaced among them. None
            (default): all of them, up to ``CALIBRATION_CAP`` (64). AITune records ``ait.config.
            max_num_samples_stored`` calls per graph (1 by default): raise it before ``ait.tune`` to calibrate on
            more.
        unquantized_precision: What the layers ModelOpt leaves unquantized compute in: ``"fp16"`` (default),
            ``"bf16"`` or ``"fp32"``. ModelOpt quantizes a copy of the module cast to it.
        exclude: Module names left unquantized, as ``fnmatch`` patterns over ``module.named_modules()`` names
            (``"head"``, ``"encoder.layers.0.*"``, ``"*.downsample.*"``); each must match a module. Convolutions
            are left unquantized whatever this says (``pipeline.quantize.UNQUANTIZED_LAYERS``).
        min_cosine: The self-check's smallest cosine similarity per output to eager PyTorch (None: the precision's
            default, ``DEFAULT_THRESHOLDS``).
        max_relative_error: The self-check's largest relative L2 error per output (None: the precision's default).

    """

    recipe: str | None = None
    calibration_samples: int | None = None
    unquantized_precision: str = "fp16"
    exclude: tuple[str, ...] = ()
    min_cosine: float | None = None
    max_relative_error: float | None = None

    def __post_init__(self) -> None:
        """Validate the values and bring them to their canonical form (``exclude`` a tuple, precision aliases)."""
        if self.recipe is not None and (not isinstance(self.recipe, str) or not self.recipe.endswith("_CFG")):
            raise ConfigError(
                f"quantization recipe must be the name of a ModelOpt recipe ending in _CFG (e.g. "
                f"{DEFAULT_RECIPES['int8']!r}), or None for the precision's default; got {self.recipe!r}."
            )
        samples = self.calibration_samples
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise ConfigError(
                f"quantization calibration_samples must be an int >= 1, or None for every recorded call (up to "
                f"{CALIBRATION_CAP}); got {samples!r}."
            )
        rest = self.unquantized_precision
        rest = _PRECISION_ALIASES.get(rest.lower(), rest.lower()) if isinstance(rest, str) else rest
        if rest not in UNQUANTIZED_PRECISIONS:
            raise ConfigError(
                f"quantization unquantized_precision must be one of {', '.join(map(repr, UNQUANTIZED_PRECISIONS))}, "
                f"got {self.unquantized_precision!r}."
            )
        object.__setattr__(self, "unquantized_precision", rest)
        exclude = (self.exclude,) if isinstance(self.exclude, str) else self.exclude
        if not isinstance(exclude, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in exclude):
            raise ConfigError(
                f"quantization exclude must be a list of module name patterns (e.g. ['head', 'encoder.layers.0.*']), "
                f"got {self.exclude!r}."
            )
        object.__setattr__(self, "exclude", tuple(exclude))
        _check_number("min_cosine", self.min_cosine, 0.0, 1.0)
        _check_number("max_relative_error", self.max_relative_error, 0.0, math.inf)

    def recipe_name(self, precision: str) -> str:
        """The ModelOpt recipe for ``precision`` (``"int8"``, ``"fp8"``)."""
        return self.recipe or DEFAULT_RECIPES[precision]

    def check_recipe(self, precision: str) -> None:
        """Refuse a recipe named for another precision than ``precision`` (it would build that one)."""
        prefix = QUANTIZED_PRECISIONS[precision]
        if self.recipe is not None and not self.recipe.startswith(f"{prefix}_"):
            raise ConfigError(
                f"quantization recipe {self.recipe!r} does not quantize to {precision}: precision={precision!r} "
                f"takes a ModelOpt recipe named {prefix}_*_CFG (default {DEFAULT_RECIPES[precision]!r}). Change "
                "the recipe, or the precision."
            )

    def thresholds(self, precision: str) -> AccuracyThresholds:
        """The self-check's bounds for ``precision``: this config's, else the precision's defaults."""
        default = DEFAULT_THRESHOLDS[precision]
        return AccuracyThresholds(
            min_cosine=default.min_cosine if self.min_cosine is None else float(self.min_cosine),
            max_relative_error=(
                default.max_relative_error if self.max_relative_error is None else float(self.max_relative_error)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the fields that differ from the defaults (empty for the defaults)."""
        default = QuantizationConfig()
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) != getattr(default, f.name)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantizationConfig:
        """Rebuild from :meth:`to_dict` output or a user's dict (unknown keys are an error naming the known ones)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
            hints = "".join(f" Did you mean {c[0]!r} for {name!r}?" for name, c in close.items() if c)
            raise ConfigError(f"Unknown quantization fields {unknown}; known: {known}.{hints}")
        return cls(**data)

    def describe(self) -> str:
        """The changed fields, e.g. ``calibration_samples=8,exclude=[head]`` (empty for the defaults)."""
        parts = []
        for name, value in self.to_dict().items():
            text = "[" + ",".join(value) + "]" if isinstance(value, list) else str(value)
            parts.append(f"{name}={text}")
        return ",".join(parts)


def require_modelopt() -> ModuleType:
    """``modelopt.torch.quantization``, or a :class:`MissingRequirementError` naming the install command."""
    try:
        return importlib.import_module("modelopt.torch.quantization")
    except Exception as error:  # not installed, or a build of it that fails to import here
        raise MissingRequirementError(
            f"precision='int8' and 'fp8' need NVIDIA ModelOpt (nvidia-modelopt), which does not import here "
            f"({type(error).__name__}: {error}). Install it with `{INSTALL_COMMAND}`, or build with precision="
            "'fp16'."
        ) from error


@contextmanager
def quantized_export(active: bool) -> Iterator[None]:
    """While ``active``, ModelOpt's quantizers trace as ``torch.ops.tensorrt.quantize_op`` (Torch-TensorRT's Q/DQ).

    ModelOpt's ``export_torch_mode``; the capture and the compile of a quantized module run inside it.
    """
    if not active:
        yield
        return
    from modelopt.torch.quantization.utils import export_torch_mode

    with export_torch_mode():
        yield
