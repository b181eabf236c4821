"""``TorchTensorRTAotBackendConfig``: what the user asks the backend to build."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from typing import Any

from aitune.torch.backend.backend import BackendConfig

from aitune_trt_aot.cuda_graphs import check_cuda_graphs
from aitune_trt_aot.engine_runtime import KERNEL_SPECIALIZATIONS
from aitune_trt_aot.errors import ConfigError
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.frontends import FRONTENDS
from aitune_trt_aot.plan import check_config
from aitune_trt_aot.precision import PRECISIONS as PRECISION_DTYPES
from aitune_trt_aot.quantization import QUANTIZED_PRECISIONS, QuantizationConfig
from aitune_trt_aot.settings import (
    CompilationSettings,
    check_settings,
    is_compilation_settings,
    settings_from_dict,
    settings_to_dict,
)
from aitune_trt_aot.warm_up import check_warm_up

PRECISIONS = (*PRECISION_DTYPES, *QUANTIZED_PRECISIONS)
PRECISION_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}
PRECISION_ROUTES = ("auto", "autocast", "cast_module")
TS_CAPTURES = ("trace", "script")


def normalize_ir(ir: Any) -> str:
    """Return the canonical IR name (a key of the frontend registry), or raise a ``ConfigError`` naming them."""
    name = str(ir).strip().lower() if isinstance(ir, str) else ir
    aliases = {alias: frontend.name for frontend in FRONTENDS.values() for alias in frontend.aliases}
    name = aliases.get(name, name)
    if name not in FRONTENDS:
        spellings = ", ".join(f"{alias!r} means {canonical!r}" for alias, canonical in aliases.items())
        raise ConfigError(f"Unknown ir {ir!r}: use one of {', '.join(map(repr, FRONTENDS))} ({spellings}).")
    return name


def output_formats() -> tuple[str, ...]:
    """The allowed ``output_format`` values: ``"auto"`` and every registered artifact format."""
    return ("auto", *FORMATS)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"Unknown {name} {value!r}: use one of {', '.join(map(repr, allowed))}.")


@dataclass
class TorchTensorRTAotBackendConfig(BackendConfig):
    """Configuration of :class:`aitune_trt_aot.TorchTensorRTAotBackend`.

    Attributes:
        ir: Compile path: ``"dynamo"`` (torch.export + ``torch_tensorrt.dynamo.compile``, the default),
            ``"ts"`` (TorchScript frontend; ``"torchscript"`` is accepted) or ``"fx"`` (FX frontend).
        precision: ``"fp32"`` (default), ``"fp16"`` or ``"bf16"``: the precision the engines compute in. The
            backend turns it into settings the installed Torch-TensorRT accepts (see ``precision_route``).
            ``"int8"`` or ``"fp8"``: NVIDIA ModelOpt quantizes a copy of the module, calibrated on the calls AITune
            recorded, and the layers it quantizes run in 8 bits (``quantization`` says how; ``ir="dynamo"`` only;
            convolutions stay unquantized, as TensorRT-RTX builds 8-bit engines for matrix multiplications only;
            FP8 needs compute capability 8.9 or newer; ``pip install "aitune-trt-aot[quant]"``; docs/precision.md).
        compile_config: Torch-TensorRT ``CompilationSettings`` (or a dict of its fields). Values are checked
            against the fields' types when the config is made.
        precision_route: How fp16/bf16 is obtained. ``"autocast"``: Torch-TensorRT's rule-based autocast
            (inputs and outputs stay fp32, sensitive layers stay fp32). ``"cast_module"``: the module's
            weights are cast and floating inputs/outputs are cast at the engine boundary (the whole network
            runs in reduced precision, as eager ``module.half()`` would). ``"auto"`` (default): autocast,
            and cast_module when autocast fails for the model, with a warning.
        ts_capture: How the TorchScript frontend captures the module: ``"trace"`` (default) or ``"script"``.
        output_format: What the compiled artifact inside the ``.ait`` checkpoint is, one of the formats
            ``torch_tensorrt.save`` writes. ``"auto"`` (default): the IR's own format (``exported_program`` for
            dynamo, ``torchscript`` for ts). ``"exported_program"`` and ``"aot_inductor"`` need ``ir="dynamo"``;
            ``"torchscript"`` works for dynamo and ts. ``"aot_inductor"`` is a ``.pt2`` AOTInductor package
            that also runs without AITune, in Python and C++ (``aitune_trt_aot.save_pt2``, docs/pt2.md).
        cuda_graphs: Run the engines through CUDA graphs, one captured per input shape on its first call. Cuts
            the host time per call, which dominates for small models; costs one graph's memory per distinct
            shape (at most 32 graphs; further shapes run without one). Outputs are copied out of the graph,
            so a result stays valid after the next call. ``"auto"`` (default): where the artifact format
            allows it (every format does now, ``"aot_inductor"`` included), and a shape whose capture fails runs
            without a graph, with a warning. ``True``: always; a failed capture is an error. ``False``: never. See
            docs/benchmark.md.
        kernel_specialization: When TensorRT-RTX compiles kernels specialised for an input shape:
            ``"eager"`` (on the first call at the shape, blocking), ``"lazy"`` (in the background; generic kernels
            run meanwhile), ``"none"`` (never; generic kernels only). ``"auto"`` (default): ``"eager"`` where calls
            run through CUDA graphs (a graph keeps the kernels it captured), else ``"lazy"``. ``"lazy"`` cannot be
            combined with CUDA graphs. Applies to ``exported_program`` and ``aot_inductor`` artifacts on
            TensorRT-RTX (a ``.pt2`` records it for ``load_pt2``); ``torchscript`` artifacts and standard TensorRT
            keep their defaults (``aitune_trt_aot.engine_runtime``).
        warm_up: At each activation (``ait.load`` included), call the engines once at each input shape the build's
            self-check called, with zero-filled inputs, so that TensorRT-RTX's kernels are compiled and the CUDA
            graphs captured before the first user call (``aitune_trt_aot.warm_up``; the shapes warmed are the
            backend's ``warmed_shapes``). ``True``: every such shape. ``False``: none. ``"auto"`` (default): those
            whose first calls during the build took, together, at most 0.5 s, so that loads stay within their goals.
            This field does not change what is built.
        check_shapes: Check every call's tensor shapes and dtypes against the ranges the engines were built
            for and raise a clear error outside them (default True).
        build_cache: Reuse the artifact of an identical earlier build instead of exporting and compiling again
            (default True). Identical means the same model code, structure and weights, the same config, input
            ranges and machine (``aitune_trt_aot.build_cache``). A reused artifact is still loaded and checked
            against eager PyTorch; one that fails is dropped and the model built afresh. Entries live in
            ``$AITUNE_TRT_AOT_CACHE_DIR`` (default ``~/.cache/aitune_trt_aot/builds``); the 8 most recently used
            are kept (``$AITUNE_TRT_AOT_CACHE_ENTRIES``). This field does not change what is built.
        pickle_protocol: Pickle protocol used when saving the compiled artifact.
        quantization: How an ``"int8"``/``"fp8"`` build is quantized and checked: ModelOpt recipe, calibration
            samples, the precision of the layers left unquantized, modules to leave unquantized and the self-check's
            accuracy thresholds (:class:`aitune_trt_aot.QuantizationConfig`, or a dict of its fields). Setting it
            with another precision is an error.

    """

    ir: str = "dynamo"
    precision: str = "fp32"
    compile_config: Any = field(default_factory=CompilationSettings)
    precision_route: str = "auto"
    ts_capture: str = "trace"
    output_format: str = "auto"
    cuda_graphs: bool | str = "auto"
    kernel_specialization: str = "auto"
    warm_up: bool | str = "auto"
    check_shapes: bool = True
    build_cache: bool = True
    pickle_protocol: int = 5
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)

    def __post_init__(self) -> None:
        """Validate the values, bring them to their canonical form, and apply the build plan's config rules."""
        self.ir = normalize_ir(self.ir)
        if isinstance(self.precision, str):
            self.precision = PRECISION_ALIASES.get(self.precision.lower(), self.precision.lower())
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("precision_route", self.precision_route, PRECISION_ROUTES)
        _check_choice("ts_capture", self.ts_capture, TS_CAPTURES)
        _check_choice("output_format", self.output_format, output_formats())
        check_cuda_graphs(self.cuda_graphs)
        _check_choice("kernel_specialization", self.kernel_specialization, KERNEL_SPECIALIZATIONS)
        check_warm_up(self.warm_up)
        for flag in ("check_shapes", "build_cache"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False, got {getattr(self, flag)!r}.")
        if (
            not isinstance(self.pickle_protocol, int)
            or isinstance(self.pickle_protocol, bool)
            or not 2 <= self.pickle_protocol <= pickle.HIGHEST_PROTOCOL
        ):
            raise ConfigError(
                f"pickle_protocol must be an int from 2 to {pickle.HIGHEST_PROTOCOL}, got {self.pickle_protocol!r}."
            )
        if isinstance(self.quantization, dict):
            self.quantization = QuantizationConfig.from_dict(self.quantization)
        if not isinstance(self.quantization, QuantizationConfig):
            raise ConfigError(
                "quantization must be aitune_trt_aot.QuantizationConfig (or a dict of its fields), got "
                f"{type(self.quantization).__name__}."
            )
        if isinstance(self.compile_config, dict):
            self.compile_config = settings_from_dict(self.compile_config, stored=False)
        if not is_compilation_settings(self.compile_config):
            raise ConfigError(
                "compile_config must be torch_tensorrt.dynamo.CompilationSettings (or a dict of its fields), "
                f"got {type(self.compile_config).__name__}."
            )
        check_settings({f.name: getattr(self.compile_config, f.name) for f in dataclasses.fields(self.compile_config)})
        check_config(self)  # the plan's rules that need no stack (aitune_trt_aot.plan holds every rule)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; ``compile_config`` and ``quantization`` hold only the fields that differ from defaults."""
        return {
            "ir": self.ir,
            "precision": self.precision,
            "compile_config": settings_to_dict(self.compile_config),
            "precision_route": self.precision_route,
            "ts_capture": self.ts_capture,
            "output_format": self.output_format,
            "cuda_graphs": self.cuda_graphs,
            "kernel_specialization": self.kernel_specialization,
            "warm_up": self.warm_up,
            "check_shapes": self.check_shapes,
            "build_cache": self.build_cache,
            "pickle_protocol": self.pickle_protocol,
            "quantization": self.quantization.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> TorchTensorRTAotBackendConfig:
        """Rebuild a config from :meth:`to_dict` output, e.g. stored in a checkpoint (unknown keys are an error)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown TorchTensorRTAotBackendConfig fields {unknown}; known: {sorted(known)}.")
        data = dict(data)
        if isinstance(data.get("compile_config"), dict):  # stored settings: unknown names mean another version
            data["compile_config"] = settings_from_dict(data["compile_config"], stored=True)
        return cls(**data)

    def describe(self) -> str:
        """Only the fields that differ from the defaults, e.g. ``ir=ts,compile_config(min_block_size=1)``."""
        mine, default = self.to_dict(), self.__class__().to_dict()
        parts = []
        for name, value in mine.items():
            if name == "compile_config":
                if value:
                    inner = ",".join(f"{k}={_describe_value(v)}" for k, v in value.items())
                    parts.append(f"compile_config({inner})")
            elif name == "quantization":
                if value:
                    parts.append(f"quantization({self.quantization.describe()})")
            elif value != default[name]:
                parts.append(f"{name}={value}")
        return ",".join(parts)


def _describe_value(value: Any) -> str:
    if isinstance(value, dict) and "set" in value:
        return "{" + ",".join(_describe_value(v) for v in value["set"]) + "}"
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)
