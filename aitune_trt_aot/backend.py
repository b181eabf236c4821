"""``TorchTensorRTAotBackend``: the AITune glue that builds, persists and runs Torch-TensorRT engines.

The class is a direct subclass of AITune's ``Backend`` named ``TorchTensorRTAotBackend``, the same
name as AITune's built-in backend. AITune maps checkpoint entries to classes with
``{c.__name__: c for c in Backend.__subclasses__()}``; the built-in class is always created first
(importing ``Backend`` imports it), so once this module is imported the dict keeps this class, and
every checkpoint entry of that name, ours or the built-in's, loads here. See ``docs/registration.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from aitune.torch.backend.backend import Backend, BackendBuildStep, BackendState, BuildMode, ExecutionMode
from aitune.torch.checkpoint.artifact import ArtifactPath
from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.graph_spec import GraphSpec
from aitune.torch.module.sample_store import SampleStore
from aitune.torch.utils.module import move_module_to_device, move_tensors_to_device
from torch import nn
from torch.utils._pytree import tree_leaves

from aitune_trt_aot import checkpoint
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.formats import ArtifactFormat, get_format
from aitune_trt_aot.frontends import CompiledModel, CompileRequest, Frontend, UnsupportedInputsError, get_frontend
from aitune_trt_aot.precision import PrecisionPlan, output_dtypes, plan_precision, precision_boundary
from aitune_trt_aot.settings import convert_settings
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.stack import (
    MissingRequirementError,
    enabled_features,
    is_tensorrt_rtx,
    require_cuda,
    require_torch_tensorrt,
    stack_description,
)
from aitune_trt_aot.validation import output_mismatch
from aitune_trt_aot.wrappers import bind_constants

logger = logging.getLogger(__name__)

SELF_CHECK_SHAPES = 3  # differently shaped recorded calls compared with eager after each build
SELF_CHECK_REPEATS = 3  # calls per shape


class BuildError(RuntimeError):
    """Torch-TensorRT could not build the engines; the message names the IR, precision and stack."""


def _refuse_dynamic_shapes_in_rtx_cpp_runtime(
    frontend: Frontend, artifact_format: ArtifactFormat, guard: ShapeGuard
) -> None:
    """Refuse, before any work, engines that would give wrong results on TensorRT-RTX.

    Torch-TensorRT 2.11's C++ runtime creates TensorRT-RTX execution contexts with the default lazy
    shape-specialised kernels, which gave garbage for some shapes after the first calls (measured for the
    TorchScript frontend and for AOTInductor packages; see docs/known-issues.md). Static shapes have no
    specialised kernels.
    """
    dynamic = [r.name for r in guard.ranges if r.min_shape != r.max_shape]
    if not (dynamic and is_tensorrt_rtx() and artifact_format.runtime == "cpp"):
        return
    raise MissingRequirementError(
        f"ir={frontend.name!r} saving {artifact_format.name!r} with dynamic shapes (inputs {dynamic}) is refused on "
        "TensorRT-RTX: those engines run in Torch-TensorRT's C++ runtime, whose TensorRT-RTX contexts switch to "
        "shape-specialised kernels that gave wrong results after the first calls (docs/known-issues.md). Use "
        "ir='dynamo' with output_format='auto' (Python runtime, generic kernels), or tune with a single batch size "
        "(static shapes)."
    )


class TorchTensorRTAotBuildStep(BackendBuildStep):
    """The steps of a build, as AITune's build report lists them."""

    COMPILE = "Capture and Torch-TensorRT compile"
    ARTIFACT_SAVE = "Compiled artifact save"
    ARTIFACT_LOAD = "Compiled artifact load"
    SELF_CHECK = "Compare with eager PyTorch"


class TorchTensorRTAotBackend(Backend):
    """Ahead-of-time Torch-TensorRT backend for AITune, with dynamo, TorchScript and FX frontends.

    Builds TensorRT engines for the shape ranges AITune recorded, writes them to one artifact file,
    and runs what it loads back from that file, both right after tuning and after ``ait.load``.
    Constructing it works on any machine; building and activating need CUDA and Torch-TensorRT.

    Example:
        >>> backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir="dynamo"))  # doctest: +SKIP
        >>> model = ait.Module(net, "net", strategy=ait.OneBackendStrategy(backend=backend))  # doctest: +SKIP

    """

    _build_mode = BuildMode.AHEAD_OF_TIME
    _execution_modes = frozenset({ExecutionMode.SINGLE_GPU})
    _devices: ClassVar[list[str]] = ["cuda"]

    def __init__(self, config: TorchTensorRTAotBackendConfig | None = None) -> None:
        """Create the backend; nothing is checked against the machine until it builds or activates."""
        super().__init__()
        if config is not None and not isinstance(config, TorchTensorRTAotBackendConfig):
            raise TypeError(
                f"config must be aitune_trt_aot.TorchTensorRTAotBackendConfig, got {type(config).__module__}."
                f"{type(config).__name__}."
            )
        self._config: TorchTensorRTAotBackendConfig = config or TorchTensorRTAotBackendConfig()
        self._state: checkpoint.BackendState | None = None
        self._runner: Any = None
        self._guard: ShapeGuard | None = None
        self._description: str | None = None

    @property
    def config(self) -> TorchTensorRTAotBackendConfig:
        """The backend's configuration."""
        return self._config

    @property
    def artifact_path(self) -> Path | None:
        """Where the compiled artifact lies, once built or loaded."""
        return None if self._state is None else self._state.artifact.path

    @property
    def artifact_format(self) -> str | None:
        """Name of the artifact's format (``pickled_module``, ``aot_inductor``, ...), once built or loaded."""
        return None if self._state is None else self._state.artifact_format

    @property
    def precision(self) -> str | None:
        """How the engines got their precision (``fp32``, ``autocast(float16)``, ``cast_module(float16)``)."""
        return None if self._state is None else self._state.precision

    def key(self) -> str:
        """Stable across processes; changes with any compile-relevant setting."""
        return f"{self.__class__.__name__}_{self._config.key()}"

    def describe(self) -> str:
        """Class name and the config fields that differ from the defaults.

        Computed once: AITune calls it on every public method call, ``infer`` included, and encoding the
        Torch-TensorRT settings each time cost more than running a small model's engines (benchmark.md).
        """
        if self._description is None:
            self._description = f"{self.__class__.__name__}({self._config.describe()})"
        return self._description

    def _build(self, module: nn.Module, graph_spec: GraphSpec, samples: SampleStore, cache_dir: Path) -> Backend:
        """Compile for the recorded shape ranges, save the artifact, then run what was saved."""
        frontend = get_frontend(self._config.ir)
        torch_tensorrt = require_torch_tensorrt()
        frontend.check_available(enabled_features())
        require_cuda()
        settings = convert_settings(self._config.compile_config)
        plan = plan_precision(settings, self._config.precision_route, is_tensorrt_rtx(), frontend.name)
        artifact_format = self._artifact_format(frontend)

        module = module.eval()
        move_module_to_device(module, self._device)
        guard = ShapeGuard.from_graph_spec(graph_spec, samples[0], module.forward)
        # Plain-valued arguments are specialised into the engines: capture a module without them.
        capture_module = bind_constants(module, guard.constants)
        capture_spec = dataclasses.replace(
            graph_spec, forward_signature=ForwardSignature.from_callable(capture_module.forward)
        )
        request = CompileRequest(
            module=capture_module,
            graph_spec=capture_spec,
            sample=guard.strip_constants(samples[0]),
            device=self._device,
            settings=settings,
            options={
                "ts_capture": self._config.ts_capture,
                "python_runtime": artifact_format.runtime == "python",
            },
            torch_tensorrt=torch_tensorrt,
        )
        frontend.check_inputs(request)
        _refuse_dynamic_shapes_in_rtx_cpp_runtime(frontend, artifact_format, guard)
        with self._track_build_step(TorchTensorRTAotBuildStep.COMPILE) as result:
            compiled, plan = self._compile(frontend, request, plan)
            result["precision"] = plan.describe()

        compiled.constants = dict(guard.constants)
        artifact = ArtifactPath(cache_dir, f"model{artifact_format.suffix}")
        with self._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_SAVE) as result:
            write_atomically(
                artifact.path, partial(artifact_format.save, compiled, pickle_protocol=self._config.pickle_protocol)
            )
            result["compiled_model_size_bytes"] = artifact.path.stat().st_size
        del compiled

        self._state = checkpoint.BackendState(
            config=self._config,
            artifact=artifact,
            artifact_format=artifact_format.name,
            device=self._device,
            shape_guard=guard,
            precision=plan.describe(),
        )
        # Run the persisted artifact, so what tuning validates is what production loads.
        with self._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_LOAD):
            self._activate()
        with self._track_build_step(TorchTensorRTAotBuildStep.SELF_CHECK):
            self._check_against_eager(frontend, plan, module, samples)
        logger.info("Built %s with %s [%s] into %s.", self.describe(), plan.describe(), stack_description(), artifact)
        return self

    def _artifact_format(self, frontend: Frontend) -> ArtifactFormat:
        """The configured format, or for ``output_format="auto"`` the frontend's default.

        The default is the Python-runtime ``pickled_module`` where CUDA graphs are asked for and the
        frontend can write it: only Python-runtime engine calls can be captured (the C++ runtime's calls
        invalidated the capture, measured on the GPU host).
        """
        name = self._config.output_format
        if name == "auto":
            name = frontend.artifact_format(is_tensorrt_rtx())
            if self._config.cuda_graphs and "pickled_module" in frontend.other_formats:
                name = "pickled_module"
        elif name not in frontend.other_formats:
            raise ValueError(f"ir={frontend.name!r} cannot write output_format={name!r}.")
        artifact_format = get_format(name)
        if self._config.cuda_graphs and artifact_format.runtime != "python":
            raise ValueError(
                f"cuda_graphs=True needs engines in Torch-TensorRT's Python runtime; ir={frontend.name!r} saves "
                f"{name!r}, which runs in the C++ runtime, whose calls cannot be captured in a CUDA graph. Use "
                "ir='dynamo' with output_format='auto', or cuda_graphs=False."
            )
        return artifact_format

    def _compile(
        self, frontend: Frontend, request: CompileRequest, plan: PrecisionPlan
    ) -> tuple[CompiledModel, PrecisionPlan]:
        """Compile under ``plan``; with ``precision_route="auto"`` fall back from autocast to a cast module.

        ``request.settings`` holds the user's settings; each attempt compiles with its plan's settings.
        """
        try:
            return self._compile_with(frontend, request, plan), plan
        except (MissingRequirementError, UnsupportedInputsError):
            raise
        except Exception as error:
            user_chose_autocast = bool(getattr(request.settings, "enable_autocast", False))
            if not (self._config.precision_route == "auto" and plan.route == "autocast") or user_chose_autocast:
                raise self._build_error(frontend, plan, error) from error
            fallback = plan_precision(request.settings, "cast_module", is_tensorrt_rtx(), frontend.name)
            logger.warning(
                "Torch-TensorRT autocast to %s failed for this model (%s: %s); building with the module cast to %s "
                "instead (precision_route='cast_module').",
                plan.dtype,
                type(error).__name__,
                error,
                plan.dtype,
            )
            try:
                return self._compile_with(frontend, request, fallback), fallback
            except Exception as second:
                raise self._build_error(frontend, fallback, second) from second

    @staticmethod
    def _compile_with(frontend: Frontend, request: CompileRequest, plan: PrecisionPlan) -> CompiledModel:
        module = request.module
        if plan.dtype is not None:
            sample = move_tensors_to_device(request.sample, request.device)
            out_dtypes = output_dtypes(module, sample)
            if plan.route == "cast_module":
                # Cast a copy: AITune may still run the original module (eager fallback, other backends).
                module = precision_boundary(copy.deepcopy(module).to(plan.dtype), plan.dtype, out_dtypes)
            else:
                module = precision_boundary(module, None, out_dtypes)
        return frontend.compile(dataclasses.replace(request, module=module, settings=plan.settings))

    def _check_against_eager(
        self, frontend: Frontend, plan: PrecisionPlan, module: nn.Module, samples: SampleStore
    ) -> None:
        """Run recorded calls through the loaded artifact and eager PyTorch; refuse engines that disagree."""
        mismatch = self._first_mismatch(module, samples, plan.dtype)
        if mismatch is None:
            return
        self._deactivate()
        hint = "Try ir='dynamo'." if frontend.name != "dynamo" else "See docs/known-issues.md."
        raise BuildError(
            f"The engines built with ir={frontend.name!r}, precision {plan.describe()} do not reproduce eager "
            f"PyTorch on a recorded input ({mismatch}) [{stack_description()}]. {hint}"
        )

    def _first_mismatch(self, module: nn.Module, samples: SampleStore, reduced: torch.dtype | None) -> str | None:
        """Compare up to ``SELF_CHECK_SHAPES`` differently shaped recorded calls, each ``SELF_CHECK_REPEATS`` times.

        Several calls per shape, because some runtimes change kernels after the first call at a shape
        (see ``rtx_runtime``).
        """
        seen: set[tuple] = set()
        for sample in samples:
            shapes = tuple(tuple(t.shape) for t in tree_leaves(sample) if isinstance(t, torch.Tensor))
            if shapes in seen:
                continue
            seen.add(shapes)
            args, kwargs = move_tensors_to_device(sample, self._device)
            with torch.no_grad():
                expected = module(*args, **kwargs)
                for attempt in range(1, SELF_CHECK_REPEATS + 1):
                    problem = output_mismatch(self._infer(*args, **kwargs), expected, reduced)
                    if problem is not None:
                        return f"shapes {list(shapes)}, call {attempt} of {SELF_CHECK_REPEATS}: {problem}"
            if len(seen) >= SELF_CHECK_SHAPES:
                break
        return None

    def _build_error(self, frontend: Frontend, plan: PrecisionPlan, error: Exception) -> BuildError:
        hint = "" if frontend.name == "dynamo" else " Try ir='dynamo', which handles more models."
        return BuildError(
            f"Torch-TensorRT could not build ir={frontend.name!r} with precision {plan.describe()} "
            f"[{stack_description()}]: {type(error).__name__}: {error}.{hint}"
        )

    def _activate(self) -> None:
        """Load the artifact from disk and make it the callable that ``infer`` runs."""
        if self._state is None:
            raise RuntimeError(f"{self.name} has nothing to activate: build it or load it from a checkpoint first.")
        path = self._state.artifact.path
        if not path.is_file():
            raise FileNotFoundError(
                f"The compiled artifact {path} is missing: the checkpoint or cache folder is incomplete. Re-run "
                "ait.tune, or load the .ait checkpoint it was saved in."
            )
        require_cuda()
        if self._state.artifact_format == "exported_program" and is_tensorrt_rtx():
            logger.warning(
                "%s runs in Torch-TensorRT's C++ runtime, whose TensorRT-RTX contexts switch to shape-specialised "
                "kernels; those gave wrong results for some models (docs/known-issues.md). Re-tune with "
                "aitune_trt_aot to run with generic kernels.",
                path,
            )
        device = self._device or self._state.device or torch.device("cuda")
        runner = get_format(self._state.artifact_format).load(path, device)
        self._runner = CudaGraphRunner(runner, device) if self._config.cuda_graphs else runner
        self._guard = self._state.shape_guard

    def _infer(self, *args: Any, **kwargs: Any) -> Any:
        """Check the call against the built shape ranges, then run the engines."""
        if self._runner is None:
            raise RuntimeError(f"{self.name} is not active: call activate() (or ait.load) first.")
        if self._guard is not None:
            args, kwargs = self._guard.prepare(args, kwargs, self._config.check_shapes)
        with torch.no_grad():
            return self._runner(*args, **kwargs)

    def _deactivate(self) -> None:
        """Drop the loaded engines; the artifact stays on disk."""
        self._runner = None
        self._guard = None

    def _deploy(self) -> None:
        """Load the artifact after ``ait.load`` (no recompilation)."""
        self._activate()

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry: config, artifact (an ``ArtifactPath``), format, device and input ranges."""
        if self._state is None:
            raise RuntimeError(f"{self.name} has no compiled artifact to save: it must be built first.")
        return self._state.to_dict(self.__class__.__name__)

    @classmethod
    def from_dict(cls, module: nn.Module | None, state_dict: dict) -> TorchTensorRTAotBackend:
        """Rebuild from an entry written by this package or by AITune's built-in backend."""
        if state_dict.get("type") != cls.__name__:
            raise ValueError(f"Checkpoint entry of type {state_dict.get('type')!r} is not a {cls.__name__}.")
        state = checkpoint.BackendState.from_dict(state_dict)
        backend = cls(state.config)
        backend._state = state
        backend._device = state.device
        backend.state = BackendState.CHECKPOINT_LOADED
        return backend
