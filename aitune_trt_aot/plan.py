"""The build plan: what one build will do on this stack, and every "not supported here" rule.

``make_plan(config, stack, graph_spec, sample, settings, gpu)`` turns the user's config, the installed stack, the
GPU and the recorded inputs into a :class:`BuildPlan`: frontend, artifact format, precision route, input ranges,
frontend options and what the self-check accepts. Every refusal lives here (``check_config`` holds the rules that
need no stack and runs when the config is made); ``docs/irs.md`` has the same rules as a table. Adding an IR or a
format means adding its module and naming it in the frontend's ``formats``; this file reads those declarations.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from aitune.torch.module.graph_spec import GraphSpec

from aitune_trt_aot import hints
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.errors import (
    BuildError,
    ConfigError,
    MissingRequirementError,
    Pt2ExportError,
    UnsupportedInputsError,
)
from aitune_trt_aot.formats import FORMATS, ArtifactFormat
from aitune_trt_aot.formats.aot_inductor import AotInductorFormat
from aitune_trt_aot.frontends import FRONTENDS, Frontend, FrontendOptions
from aitune_trt_aot.precision import PRECISIONS, PrecisionPlan, plan_precision, plan_quantized, requested_dtypes
from aitune_trt_aot.quantization import (
    FP8_MIN_CAPABILITY,
    QUANTIZED_PRECISIONS,
    QuantizationConfig,
    is_quantized,
    require_modelopt,
)
from aitune_trt_aot.ranges import InputRange, graph_spec_ranges
from aitune_trt_aot.settings import settings_to_dict
from aitune_trt_aot.stack import Stack
from aitune_trt_aot.validation import MaxAbsTolerance, QuantizedTolerance, Tolerance

logger = logging.getLogger(__name__)


class PlanConfig(Protocol):
    """The config fields the plan reads (``TorchTensorRTAotBackendConfig`` has them; config.py imports this module)."""

    ir: str
    precision: str
    precision_route: str
    ts_capture: str
    output_format: str
    cuda_graphs: bool | str
    kernel_specialization: str
    compile_config: Any
    quantization: QuantizationConfig


@dataclass(frozen=True)
class BuildPlan:
    """Everything decided before a build starts.

    Attributes:
        frontend: The IR frontend that compiles.
        artifact_format: The format the engines are saved in (inside the ``.ait`` checkpoint).
        precision: How the requested precision is obtained, with the effective settings.
        ranges: Min/opt/max shape of each tensor input, computed once.
        options: Typed frontend options.
        stack: The installed stack the plan was made for.
        tolerance: What counts as reproducing eager PyTorch in the self-check (8-bit builds: the quantization's
            accuracy thresholds).

    """

    frontend: Frontend
    artifact_format: ArtifactFormat
    precision: PrecisionPlan
    ranges: list[InputRange]
    options: FrontendOptions
    stack: Stack
    tolerance: Tolerance = MaxAbsTolerance()

    def describe(self) -> str:
        """``ir=dynamo format=exported_program precision=fp32`` for logs."""
        return (
            f"ir={self.frontend.name} format={self.artifact_format.name} precision={self.precision.describe()} "
            f"[{self.stack.describe()}]"
        )


def resolve_format(ir: str, output_format: str) -> str:
    """The artifact format name for ``output_format`` (``"auto"``: the IR's default); refuses impossible pairs."""
    frontend = FRONTENDS[ir]
    if output_format == "auto":
        return frontend.default_format
    if output_format not in frontend.formats:
        able = sorted(name for name, f in FRONTENDS.items() if output_format in f.formats)
        raise ConfigError(
            f"ir={ir!r} cannot write output_format={output_format!r}; it writes {list(frontend.formats)}. "
            f"{output_format!r} needs ir={' or '.join(map(repr, able))}."
        )
    return output_format


def check_config(config: PlanConfig) -> None:
    """The rules that need no stack: run when the config is made, so a bad config fails at once."""
    name = resolve_format(config.ir, config.output_format)
    if config.cuda_graphs is True and not FORMATS[name].cuda_graphs:
        able = sorted(format_name for format_name, f in FORMATS.items() if f.cuda_graphs)
        raise ConfigError(
            f"cuda_graphs=True does not work with output_format={name!r}: its calls cannot be captured in a CUDA "
            f"graph. Use output_format={' or '.join(map(repr, able))} with cuda_graphs, or cuda_graphs=False."
        )
    if config.kernel_specialization != "auto" and not FORMATS[name].runtime_settings:
        able = sorted(format_name for format_name, f in FORMATS.items() if f.runtime_settings)
        raise ConfigError(
            f"kernel_specialization={config.kernel_specialization!r} cannot be applied to output_format={name!r}: "
            f"the backend sets it on the engines of {' and '.join(map(repr, able))} artifacts only; the others keep "
            "TensorRT-RTX's default. Leave kernel_specialization='auto', or use one of those formats."
        )
    if config.kernel_specialization == "lazy" and uses_cuda_graphs(config, name):
        raise ConfigError(
            f"{hints.LAZY_KERNELS_UNDER_GRAPHS} Use kernel_specialization='eager' or 'none' with CUDA graphs, or "
            "cuda_graphs=False."
        )
    _check_quantization(config, name)
    _check_reduced_precision(config)


def _check_quantization(config: PlanConfig, artifact_format: str) -> None:
    """INT8/FP8 rules that need no stack: an IR and a format that carry quantized engines, one precision source."""
    precision = config.precision
    if not is_quantized(precision):
        if config.quantization != QuantizationConfig():
            raise ConfigError(
                f"quantization is set ({config.quantization.describe()}) but precision={precision!r} does not "
                f"quantize. Set precision to {' or '.join(map(repr, QUANTIZED_PRECISIONS))} to quantize, or leave "
                "quantization out."
            )
        return
    frontend = FRONTENDS[config.ir]
    if not frontend.quantizes:
        able = [name for name, f in FRONTENDS.items() if f.quantizes]
        raise ConfigError(
            f"ir={config.ir!r} cannot build {precision} engines: they come from the quantize/dequantize nodes NVIDIA "
            f"ModelOpt puts into the module, which only the {' and '.join(able)} frontend's torch.export graph carries "
            f"to TensorRT. Use ir={' or '.join(map(repr, able))} with precision={precision!r}, or precision='fp16' "
            f"with ir={config.ir!r}."
        )
    if not FORMATS[artifact_format].quantized:
        able = [name for name in frontend.formats if FORMATS[name].quantized]
        raise ConfigError(
            f"output_format={artifact_format!r} cannot hold {precision} engines here: "
            f"{FORMATS[artifact_format].quantized_note} Use output_format={' or '.join(map(repr, able))} with "
            f"precision={precision!r}."
        )
    config.quantization.check_recipe(precision)
    if config.compile_config.enable_autocast:
        raise ConfigError(
            f"precision={precision!r} does not combine with compile_config enable_autocast=True: the "
            "quantize/dequantize nodes type the quantized layers, and quantization unquantized_precision (default "
            "'fp16') types the rest. Drop enable_autocast."
        )


def _check_reduced_precision(config: PlanConfig) -> None:
    """Refuse a reduced precision the IR's frontend cannot build (the FX frontend has no bf16)."""
    supported = FRONTENDS[config.ir].reduced_dtypes
    if supported is None:
        return
    for dtype in requested_dtypes(config.precision, config.compile_config):
        if dtype in supported:
            continue
        able = [name for name, reduced in PRECISIONS.items() if reduced is None or reduced in supported]
        raise ConfigError(
            f"ir={config.ir!r} cannot build {dtype} engines: its Torch-TensorRT frontend builds {' or '.join(able)} "
            f"only. Use {hints.USE_GENERAL_IR} for {dtype}, or precision={' or '.join(map(repr, able))} with "
            f"ir={config.ir!r}."
        )


def uses_cuda_graphs(config: PlanConfig, artifact_format: str) -> bool:
    """Whether calls of an artifact in ``artifact_format`` run through CUDA graphs under ``config``."""
    return config.cuda_graphs is True or (config.cuda_graphs == "auto" and FORMATS[artifact_format].cuda_graphs)


def uses_runtime_settings(config: PlanConfig, artifact_format: str, stack: Stack) -> bool:
    """Whether the loaded engines of an ``artifact_format`` artifact get runtime settings on ``stack``.

    They do for formats whose engines the backend reaches (``exported_program``, ``aot_inductor``) on TensorRT-RTX;
    elsewhere an explicit ``kernel_specialization`` is not applied, and a warning says so.
    """
    if FORMATS[artifact_format].runtime_settings and stack.tensorrt_rtx:
        return True
    if config.kernel_specialization != "auto":
        logger.warning(
            "kernel_specialization=%r is not applied: %s has no runtime settings for these engines.",
            config.kernel_specialization,
            stack.describe(),
        )
    return False


def _check_frontend_available(frontend: Frontend, stack: Stack) -> None:
    reason = stack.unsupported_reason()
    if reason is not None:
        raise MissingRequirementError(reason)
    if not stack.has_frontend(frontend.feature):
        rtx_note = " (TensorRT-RTX builds of Torch-TensorRT never include it)" if stack.tensorrt_rtx else ""
        raise MissingRequirementError(
            f"ir={frontend.name!r} needs Torch-TensorRT's {frontend.feature}, which this installation "
            f"({stack.describe()}) does not have{rtx_note}. Use {frontend.alternative} instead."
        )


def _check_inputs(frontend: Frontend, sample: tuple[tuple, dict]) -> None:
    """Refuse a call the frontend cannot compile (ts/fx: positional tensors only)."""
    if not frontend.positional_only:
        return
    args, kwargs = sample
    problems = []
    keyword_inputs = sorted(k for k, v in kwargs.items() if v is not None)
    if keyword_inputs:
        problems.append(f"keyword inputs {keyword_inputs}")
    non_tensors = [f"argument {i} ({type(a).__name__})" for i, a in enumerate(args) if not isinstance(a, torch.Tensor)]
    if non_tensors:
        problems.append("non-tensor or nested inputs: " + ", ".join(non_tensors))
    if problems:
        raise UnsupportedInputsError(
            f"ir={frontend.name!r} compiles calls whose inputs are positional tensors only; this model is called "
            f"with {'; '.join(problems)}. {hints.for_unsupported_inputs()}"
        )


def _warn_dropped_settings(frontend: Frontend, settings: Any) -> None:
    """Name every changed setting the frontend does not use (the TorchScript and FX frontends take few)."""
    if frontend.accepted_settings is None:
        return
    dropped = sorted(set(settings_to_dict(settings)) - frontend.accepted_settings)
    if dropped:
        logger.warning(
            "ir=%r ignores these compile_config settings: %s (it uses only %s). %s",
            frontend.name,
            ", ".join(dropped),
            ", ".join(sorted(frontend.accepted_settings)),
            hints.for_ignored_settings(),
        )


def _plan_precision(config: PlanConfig, settings: Any, frontend: Frontend, stack: Stack) -> PrecisionPlan:
    """The precision route, after refusing a conflict or a precision this frontend cannot build on this stack."""
    if is_quantized(config.precision):
        unquantized = PRECISIONS[config.quantization.unquantized_precision]
        return plan_quantized(config.precision, unquantized, settings)
    reduced = requested_dtypes(config.precision, settings)
    if len(reduced) > 1:
        raise ConfigError(
            f"precision={config.precision!r} and compile_config autocast_low_precision_type="
            f"{settings.autocast_low_precision_type} ask for two reduced precisions; set one of them."
        )
    dtype = next(iter(reduced), None)
    if dtype is not None and not frontend.typed_precision and stack.strongly_typed:
        ir = frontend.name
        raise ConfigError(
            f"ir={ir!r} cannot build {dtype} engines with TensorRT-RTX: its {ir} frontend sets precision by "
            "builder flags, which strongly typed TensorRT-RTX networks ignore, and fails on half-precision "
            f"graphs. {hints.for_reduced_precision(ir, dtype)}"
        )
    return plan_precision(dtype, settings, config.precision_route, frontend.typed_precision)


def _check_quantization_here(config: PlanConfig, gpu: dict[str, Any] | None) -> None:
    """INT8/FP8 rules of this machine: ModelOpt installed, with the recipe; FP8 only on compute capability >= 8.9."""
    precision = config.precision
    if not is_quantized(precision):
        return
    mtq = require_modelopt()
    recipe = config.quantization.recipe_name(precision)
    if not isinstance(getattr(mtq, recipe, None), dict):
        prefix = QUANTIZED_PRECISIONS[precision]
        known = sorted(n for n in dir(mtq) if n.startswith(f"{prefix}_") and n.endswith("_CFG"))
        close = difflib.get_close_matches(recipe, known, n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"quantization recipe {recipe!r} is not a recipe of the installed ModelOpt "
            f"(modelopt.torch.quantization). {suggestion}Its {precision} recipes: {', '.join(known) or 'none'}."
        )
    capability = (gpu or {}).get("compute_capability")
    if precision == "fp8" and capability is not None:
        major, minor = (int(part) for part in str(capability).split(".")[:2])
        if (major, minor) < FP8_MIN_CAPABILITY:
            needed = ".".join(map(str, FP8_MIN_CAPABILITY))
            raise MissingRequirementError(
                f"precision='fp8' needs a GPU of compute capability {needed} or newer (Ada, Hopper, Blackwell: "
                f"TensorRT runs FP8 matrix multiplications only there); this build's GPU, {gpu.get('gpu') or '?'}, "
                f"has {capability}. Use precision='int8' or 'fp16' on this GPU."
            )


def make_plan(
    config: PlanConfig,
    stack: Stack,
    graph_spec: GraphSpec,
    sample: tuple[tuple, dict],
    settings: Any,
    gpu: dict[str, Any] | None = None,
) -> BuildPlan:
    """Decide the build, or raise the error that says why this config cannot build here and what to do.

    ``settings`` is ``config.compile_config`` as the installed ``CompilationSettings`` class; ``gpu`` the build GPU's
    ``compat.device_facts`` (name and compute capability; None or None values: unknown, nothing refused for it).
    """
    frontend = FRONTENDS[config.ir]
    _check_frontend_available(frontend, stack)
    check_config(config)
    _check_quantization_here(config, gpu)
    _check_inputs(frontend, sample)
    _warn_dropped_settings(frontend, settings)
    precision = _plan_precision(config, settings, frontend, stack)
    options = FrontendOptions(
        ts_capture=config.ts_capture, reduced_dtype=precision.dtype if precision.route == "weak_typing" else None
    )
    return BuildPlan(
        frontend=frontend,
        artifact_format=FORMATS[resolve_format(config.ir, config.output_format)],
        precision=precision,
        ranges=graph_spec_ranges(graph_spec),
        options=options,
        stack=stack,
        tolerance=_tolerance(config, precision),
    )


def _tolerance(config: PlanConfig, precision: PrecisionPlan) -> Tolerance:
    """What the self-check accepts: the quantization's accuracy thresholds for 8 bits, else the dtype's bound."""
    if precision.quantized is None:
        return MaxAbsTolerance(precision.dtype)
    bounds = config.quantization.thresholds(precision.quantized)
    return QuantizedTolerance(precision.quantized, bounds.min_cosine, bounds.max_relative_error)


def with_precision(plan: BuildPlan, precision: PrecisionPlan) -> BuildPlan:
    """The same plan with another precision route (the ``precision_route="auto"`` fallback)."""
    return dataclasses.replace(plan, precision=precision)


def with_ranges(plan: BuildPlan, ranges: list[InputRange]) -> BuildPlan:
    """The same plan for other input ranges (a narrower range to build again with, a range clamped to a proof)."""
    return dataclasses.replace(plan, ranges=list(ranges))


def autocast_fallback(plan: BuildPlan, config: PlanConfig, settings: Any) -> BuildPlan | None:
    """The plan to build with after Torch-TensorRT's autocast failed: the module cast instead; None where not allowed.

    Only for ``precision_route="auto"`` when the plan chose autocast and the user's own settings (``settings``) did
    not ask for it. Torch-TensorRT 2.14's autocast fails on some graphs (a dynamic-batch transformer encoder:
    ``'SymInt' object has no attribute 'to'``); casting the module builds them in reduced precision.
    """
    if config.precision_route != "auto" or plan.precision.route != "autocast" or settings.enable_autocast:
        return None
    return with_precision(plan, plan_precision(plan.precision.dtype, settings, "cast_module", typed=True))


def refuse_without_engines(plan: BuildPlan, coverage: Coverage, settings: Any) -> None:
    """A build with no TensorRT engine would ship a "TensorRT" artifact that only re-runs PyTorch: refuse it."""
    if coverage.engines > 0:
        return
    hint = hints.for_no_engines(getattr(settings, "min_block_size", None))
    raise BuildError(
        f"{plan.describe()} built no TensorRT engine: all {coverage.pytorch_ops} operations of this graph stay in "
        f"PyTorch, so the artifact would not use TensorRT. {hint}"
    )


def refuse_without_quantized_layers(plan: BuildPlan, coverage: Coverage) -> None:
    """An INT8/FP8 build in which no layer takes 8-bit inputs would be a 16-bit build under another name: refuse it."""
    if plan.precision.quantized is None or coverage.quantized_layers() > 0:
        return
    raise BuildError(
        f"{plan.describe()} quantized no layer: none of the {(coverage.layers or {}).get('unquantized', 0)} compute "
        f"layers of the exported graph takes {plan.precision.quantized} inputs from ModelOpt's quantize/dequantize "
        f"nodes. {hints.for_no_quantized_layers()}"
    )


def check_exclude(patterns: tuple[str, ...], module_names: list[str]) -> None:
    """Refuse ``quantization.exclude`` patterns that match none of ``module_names`` (a typo would exclude nothing)."""
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in module_names if name)]
    if not unmatched:
        return
    named = [name for name in module_names if name]
    close = {p: difflib.get_close_matches(p, named, n=1) for p in unmatched}
    suggestions = "".join(f"{p!r}: did you mean {c[0]!r}? " for p, c in close.items() if c)
    shown = ", ".join(named[:12]) + (f", ... ({len(named)} in all)" if len(named) > 12 else "")
    raise ConfigError(
        f"quantization exclude patterns {unmatched} match no module of this model. {suggestions}Patterns are "
        f"fnmatch patterns over module names (model.named_modules()): {shown or 'the model has no submodules'}."
    )


def check_pt2_graphs(graphs: list[str]) -> None:
    """Refuse to write several tuned graphs (``graphs``: one description each) as one ``.pt2`` package."""
    if len(graphs) > 1:
        raise Pt2ExportError(
            f"This model was tuned into {len(graphs)} graphs ({'; '.join(graphs)}). A .pt2 written here holds one "
            "graph: TensorRT engines of several AOTInductor models would share one constants folder in the package "
            "and overwrite each other. Save each graph's backend to its own file "
            "(aitune_trt_aot.save_pt2(backend, path)), or tune the model so that it forms one graph."
        )


def check_pt2_export(described: str, artifact_format: str, path: Path) -> None:
    """Refuse a ``.pt2`` from an artifact of another format (``described``: its backend), or to a path not ``.pt2``."""
    if artifact_format != AotInductorFormat.name:
        raise Pt2ExportError(
            f"{described} holds a {artifact_format!r} artifact, not a .pt2 package. {hints.for_pt2_export()}"
        )
    if path.suffix != ".pt2":
        raise Pt2ExportError(f"{path}: a package file name must end in .pt2 (the AOTInductor loaders require it).")
