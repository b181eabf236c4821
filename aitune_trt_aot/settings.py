"""Torch-TensorRT ``CompilationSettings``: the class to use here, and a JSON-safe codec for it.

Where ``torch_tensorrt`` imports, ``CompilationSettings`` is Torch-TensorRT's own class. Elsewhere it is
a stand-in dataclass with the same field names and defaults, so configs can be declared, saved and
read on any machine. Settings are stored as the fields that differ from the defaults ("overrides"),
which keeps the stored form and the config key identical on both kinds of machine.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import tempfile
from enum import Enum
from typing import Any

import torch
from torch.fx.node import _get_qualified_name

from aitune_trt_aot.errors import ConfigError
from aitune_trt_aot.stack import torch_tensorrt_or_none

_torch_tensorrt = torch_tensorrt_or_none()


@dataclasses.dataclass
class DeviceSpec:
    """Stand-in for ``torch_tensorrt.Device`` on machines without Torch-TensorRT."""

    device_type: str = "GPU"
    gpu_id: int = 0
    dla_core: int = -1
    allow_gpu_fallback: bool = False


@dataclasses.dataclass
class StandInCompilationSettings:
    """Stand-in for ``torch_tensorrt.dynamo.CompilationSettings`` (Torch-TensorRT 2.14 fields and defaults).

    Used only where ``torch_tensorrt`` cannot be imported (no GPU driver, not installed). Building
    needs the real class; a config holding this one is converted when the backend builds. A GPU test
    checks that the fields and defaults match the installed Torch-TensorRT.
    """

    workspace_size: int = 0
    min_block_size: int = 5
    torch_executed_ops: set = dataclasses.field(default_factory=set)
    pass_through_build_failures: bool = False
    max_aux_streams: int | None = None
    version_compatible: bool = False
    optimization_level: int | None = None
    truncate_double: bool = False
    use_complex_decomposition: bool = True
    use_fast_partitioner: bool = True
    enable_experimental_decompositions: bool = False
    device: DeviceSpec | None = None
    require_full_compilation: bool = False
    disable_tf32: bool = False
    assume_dynamic_shape_support: bool = False
    sparse_weights: bool = False
    engine_capability: Any = "STANDARD"
    num_avg_timing_iters: int = 1
    dla_sram_size: int = 1048576
    dla_local_dram_size: int = 1073741824
    dla_global_dram_size: int = 536870912
    dryrun: bool | str = False
    hardware_compatible: bool = False
    timing_cache_path: str = os.path.join(tempfile.gettempdir(), "torch_tensorrt_engine_cache", "timing_cache.bin")
    lazy_engine_init: bool = False
    cache_built_engines: bool = False
    reuse_cached_engines: bool = False
    use_fp32_acc: bool = False
    refit_identical_engine_weights: bool = False
    strip_engine_weights: bool = False
    immutable_weights: bool = True
    enable_weight_streaming: bool = False
    enable_cross_compile_for_windows: bool = False
    tiling_optimization_level: str = "none"
    l2_limit_for_tiling: int = -1
    use_distributed_mode_trace: bool = False
    offload_module_to_cpu: bool = False
    enable_autocast: bool = False
    autocast_low_precision_type: torch.dtype | None = None
    autocast_excluded_nodes: set = dataclasses.field(default_factory=set)
    autocast_excluded_ops: set = dataclasses.field(default_factory=set)
    autocast_max_output_threshold: float = 512
    autocast_max_depth_of_reduction: int | None = None
    autocast_calibration_dataloader: Any = None
    enable_resource_partitioning: bool = False
    cpu_memory_budget: int | None = None
    dynamically_allocate_resources: bool = False
    decompose_attention: bool = False
    disabled_constant_fold_exclusions: frozenset = frozenset()
    attn_bias_is_causal: bool = True
    fallback_data_dependent_ops: bool = False


if _torch_tensorrt is not None:
    from torch_tensorrt.dynamo import CompilationSettings
else:
    CompilationSettings = StandInCompilationSettings  # type: ignore[misc,assignment]

# Settings of older Torch-TensorRT releases that 2.14 removed, with what to use instead.
REMOVED_SETTINGS = {
    "enabled_precisions": "TorchTensorRTAotBackendConfig(precision='fp16') (or 'bf16')",
    "use_explicit_typing": "TorchTensorRTAotBackendConfig(precision=...) (2.14 networks are strongly typed)",
    "use_python_runtime": "nothing: Torch-TensorRT 2.14 has one runtime",
}

_PRECISION_NAMES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "i8": torch.int8,
    "fp8": torch.float8_e4m3fn,
    "f8": torch.float8_e4m3fn,
    "float8_e4m3fn": torch.float8_e4m3fn,
}


def is_compilation_settings(value: Any) -> bool:
    """True for Torch-TensorRT's ``CompilationSettings`` or the stand-in."""
    return isinstance(value, (CompilationSettings, StandInCompilationSettings))


def to_torch_dtype(value: Any) -> torch.dtype:
    """Turn a precision given as ``torch.dtype``, ``torch_tensorrt.dtype`` or a name into a ``torch.dtype``."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        key = value.lower().removeprefix("torch.")
        if key in _PRECISION_NAMES:
            return _PRECISION_NAMES[key]
    to = getattr(value, "to", None)
    if to is not None and _torch_tensorrt is not None and isinstance(value, _torch_tensorrt.dtype):
        return to(torch.dtype)
    raise ConfigError(
        f"Unknown precision {value!r}. Use torch dtypes such as torch.float32, torch.float16 or torch.bfloat16."
    )


def _default_settings() -> Any:
    return CompilationSettings()


def _encode(value: Any) -> Any:
    """Encode one settings value as JSON-safe data, tagged where its type must come back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if _torch_tensorrt is not None and isinstance(value, _torch_tensorrt.dtype):
        return _encode(to_torch_dtype(value))
    if isinstance(value, DeviceSpec) or type(value).__name__ == "Device":
        device_type = getattr(value, "device_type", "GPU")
        return {
            "device": {
                "device_type": getattr(device_type, "name", str(device_type)).split(".")[-1],
                "gpu_id": int(value.gpu_id),
                "dla_core": int(value.dla_core),
                "allow_gpu_fallback": bool(value.allow_gpu_fallback),
            }
        }
    if isinstance(value, Enum):
        return {"enum": value.name}
    if isinstance(value, (set, frozenset)):
        items = [_encode(v) for v in value]
        return {"set": sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if callable(value):
        # Ops (OpOverload, Python functions) are stored by the qualified name Torch-TensorRT matches them by.
        return _get_qualified_name(value)
    raise ConfigError(
        f"Cannot store the Torch-TensorRT setting value {value!r} ({type(value).__name__}) in a config: only "
        "plain values, dtypes, devices, enums, ops and collections of them can be saved. Leave that setting at "
        "its default or pass a serialisable value."
    )


def _decode(value: Any, field_name: str) -> Any:
    """Inverse of ``_encode`` for the installed ``CompilationSettings``."""
    if isinstance(value, list):
        return [_decode(v, field_name) for v in value]
    if not isinstance(value, dict):
        return value
    if "dtype" in value:
        return to_torch_dtype(value["dtype"])
    if "set" in value:
        return {_decode(v, field_name) for v in value["set"]}
    if "device" in value:
        spec = DeviceSpec(**value["device"])
        if _torch_tensorrt is None:
            return spec
        if spec.device_type == "DLA":
            return _torch_tensorrt.Device(
                dla_core=spec.dla_core, gpu_id=spec.gpu_id, allow_gpu_fallback=spec.allow_gpu_fallback
            )
        return _torch_tensorrt.Device(gpu_id=spec.gpu_id, allow_gpu_fallback=spec.allow_gpu_fallback)
    if "enum" in value:
        default = getattr(_default_settings(), field_name, None)
        enum_type = type(default) if isinstance(default, Enum) else None
        return enum_type[value["enum"]] if enum_type is not None else value["enum"]
    raise ConfigError(f"Unreadable stored value for compile setting {field_name!r}: {value!r}")


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """The fields of ``settings`` that differ from the defaults, JSON-safe, in field order."""
    default = _default_settings()
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        default_value = getattr(default, f.name, None)
        if f.name == "device" and (value is None or default_value is None):
            # The stand-in has no default device; a real one defaults to the current GPU.
            if value is None or _encode(value) == _encode(DeviceSpec()):
                continue
        encoded = _encode(value)
        if encoded != _encode(default_value):
            overrides[f.name] = encoded
    return overrides


def _closest_names(name: str, known: set[str]) -> str:
    """``did you mean 'min_block_size'?`` for a misspelt setting name, or ``no setting has a similar name``."""
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f"did you mean {' or '.join(map(repr, close))}?" if close else "no setting has a similar name"


def _unknown_settings_error(unknown: list[str], known: set[str], stored: bool) -> ConfigError:
    """The error for setting names this Torch-TensorRT lacks: another version wrote them, or they are misspelt."""
    if stored:
        return ConfigError(
            f"Stored compile settings name fields this Torch-TensorRT does not have: {unknown}. The config was "
            "written by another Torch-TensorRT version; install that version or remove those settings."
        )
    named = [f"{name!r} ({_closest_names(name, known)})" for name in unknown]
    return ConfigError(
        f"compile_config has no setting {', '.join(named)}. Its settings are the fields of "
        "torch_tensorrt.dynamo.CompilationSettings (Torch-TensorRT 2.14): correct the name or remove it."
    )


def settings_from_dict(data: dict[str, Any], *, stored: bool = True) -> Any:
    """Build the installed ``CompilationSettings`` from stored overrides (or from a full field dict).

    Args:
        data: Setting names and values, as :func:`settings_to_dict` writes them or as a user passes them.
        stored: True for what :func:`settings_to_dict` wrote (a checkpoint, the build cache, a stand-in being
            converted), where a name this Torch-TensorRT lacks means another version wrote it; False for a dict
            the user passed, where it is a misspelling and the closest names are suggested.

    """
    removed = sorted(set(data) & set(REMOVED_SETTINGS))
    if removed:
        raise ConfigError(
            "; ".join(
                f"compile_config {name!r} is not a Torch-TensorRT 2.14 setting: use {REMOVED_SETTINGS[name]}"
                for name in removed
            )
            + "."
        )
    known = {f.name for f in dataclasses.fields(CompilationSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _unknown_settings_error(unknown, known, stored)
    values = {name: _decode(value, name) for name, value in data.items()}
    check_settings(values)
    return CompilationSettings(**values)


def convert_settings(settings: Any) -> Any:
    """Return ``settings`` as the installed ``CompilationSettings`` (converting a stand-in)."""
    if isinstance(settings, CompilationSettings):
        return settings
    return settings_from_dict(settings_to_dict(settings))


_PLAIN_TYPES = {"int": (int,), "bool": (bool,), "str": (str,), "float": (int, float)}


def _expected_types(annotation: str) -> tuple[tuple[type, ...], bool] | None:
    """``(types, None allowed)`` for a plain stand-in annotation such as ``int | None``; None for others."""
    names = [part.strip() for part in annotation.split("|")]
    optional = "None" in names
    names = [n for n in names if n != "None"]
    if len(names) != 1 or names[0] not in _PLAIN_TYPES:
        return None
    return _PLAIN_TYPES[names[0]], optional


def check_setting_types(values: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for a plain-typed setting given a value of another type.

    Torch-TensorRT's dataclass accepts anything and fails much later (or never); ``min_block_size="five"``
    must fail when the config is made.
    """
    annotations = {f.name: f.type for f in dataclasses.fields(StandInCompilationSettings)}
    for name, value in values.items():
        expected = _expected_types(str(annotations.get(name, "")))
        if expected is None:
            continue
        types, optional = expected
        if value is None and optional:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            allowed = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
            raise ConfigError(
                f"compile_config {name!r} must be {allowed}, got {value!r} ({type(value).__name__}). Pass a value "
                "of that type."
            )


@dataclasses.dataclass(frozen=True)
class SettingRange:
    """The integers Torch-TensorRT 2.14 (or the TensorRT builder setting it feeds) documents for a setting.

    Attributes:
        low: The smallest allowed value.
        high: The largest allowed value, None for no upper bound.
        meaning: What the setting is, and what None means where the field allows it.

    """

    low: int
    high: int | None
    meaning: str

    def allows(self, value: int) -> bool:
        """Whether ``value`` lies in the range."""
        return value >= self.low and (self.high is None or value <= self.high)

    def describe(self) -> str:
        """``from 0 to 5`` or ``0 or more``."""
        return f"{self.low} or more" if self.high is None else f"from {self.low} to {self.high}"

    def nearest(self, value: int) -> int:
        """The allowed value closest to ``value``."""
        return max(self.low, value if self.high is None else min(value, self.high))


# Only ranges the Torch-TensorRT 2.14 docstrings (dynamo/_settings.py, _compiler.py) or TensorRT's IBuilderConfig
# (the same in TensorRT-RTX 1.6) state; other settings are type-checked only.
SETTING_RANGES = {
    "workspace_size": SettingRange(0, None, "bytes of scratch memory TensorRT may use; 0 keeps TensorRT's default"),
    "min_block_size": SettingRange(1, None, "the fewest operations a block must hold to run in TensorRT"),
    "optimization_level": SettingRange(
        0, 5, "TensorRT's builder optimization level: higher builds longer; None keeps TensorRT's default, 3"
    ),
    "num_avg_timing_iters": SettingRange(0, None, "timing iterations averaged when TensorRT picks kernels"),
    "max_aux_streams": SettingRange(
        0, None, "auxiliary CUDA streams per engine: 0 runs on one stream, None lets TensorRT decide"
    ),
    "l2_limit_for_tiling": SettingRange(-1, None, "bytes of L2 cache tiling may target; -1 sets no limit"),
}
SETTING_CHOICES = {"tiling_optimization_level": ("none", "fast", "moderate", "full")}


def check_setting_values(values: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for a setting outside the range or choices Torch-TensorRT documents for it.

    Torch-TensorRT passes such values on to TensorRT, which ignores, clamps or rejects them at build time;
    ``workspace_size=-1`` or ``optimization_level=9`` must fail when the config is made. Types are checked first
    (:func:`check_setting_types`).
    """
    for name, value in values.items():
        limits = SETTING_RANGES.get(name)
        if limits is not None and value is not None and not limits.allows(value):
            raise ConfigError(
                f"compile_config {name!r}={value!r} is out of range: it must be {limits.describe()} "
                f"({limits.meaning}). Pass a value in that range (the nearest is {limits.nearest(value)})."
            )
        choices = SETTING_CHOICES.get(name)
        if choices is not None and value not in choices:
            raise ConfigError(
                f"compile_config {name!r}={value!r} is not one of {', '.join(map(repr, choices))}. Pass one of those."
            )


def check_settings(values: dict[str, Any]) -> None:
    """Check each setting's type, then its value (:func:`check_setting_types`, :func:`check_setting_values`)."""
    check_setting_types(values)
    check_setting_values(values)
