"""``TorchTensorRTAotBackend``: the AITune adapter. Lifecycle, reporting properties and the checkpoint entry.

The build itself is ``aitune_trt_aot.pipeline`` (``run_build``); loading an artifact to run is
``aitune_trt_aot.activation``. This module only wires them to AITune's ``Backend`` template methods.

The class is a direct subclass of AITune's ``Backend`` named ``TorchTensorRTAotBackend``, the same
name as AITune's built-in backend. AITune maps checkpoint entries to classes with
``{c.__name__: c for c in Backend.__subclasses__()}``; the built-in class is always created first
(importing ``Backend`` imports it), so once this module is imported the dict keeps this class, and
every checkpoint entry of that name, ours or the built-in's, loads here. See ``docs/registration.md``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from aitune.torch.backend.backend import Backend, BackendBuildStep, BackendState, BuildMode, ExecutionMode
from aitune.torch.module.graph_spec import GraphSpec
from aitune.torch.module.sample_store import SampleStore
from torch import nn

from aitune_trt_aot import engine_runtime, placement
from aitune_trt_aot.activation import Activation, activate, call_engines
from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
from aitune_trt_aot.errors import ArtifactError
from aitune_trt_aot.pipeline import BuildJob, TorchTensorRTAotBuildStep, run_build
from aitune_trt_aot.pipeline.self_check import engines_of
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.toolkit import GPU_TOOLKIT, Toolkit
from aitune_trt_aot.warm_up import NO_WARM_UP, WarmUpReport, chosen, warm_up

__all__ = ["TorchTensorRTAotBackend", "TorchTensorRTAotBuildStep"]

logger = logging.getLogger(__name__)


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
    _toolkit: ClassVar[Toolkit] = GPU_TOOLKIT  # what builds and activations need from the machine (toolkit.py)

    def __init__(self, config: TorchTensorRTAotBackendConfig | None = None) -> None:
        """Create the backend; nothing is checked against the machine until it builds or activates."""
        super().__init__()
        if config is not None and not isinstance(config, TorchTensorRTAotBackendConfig):
            raise TypeError(
                f"config must be aitune_trt_aot.TorchTensorRTAotBackendConfig, got {type(config).__module__}."
                f"{type(config).__name__}."
            )
        self._config: TorchTensorRTAotBackendConfig = config or TorchTensorRTAotBackendConfig()
        self._entry: CheckpointEntry | None = None
        self._runner: Any = None
        self._guard: ShapeGuard | None = None
        self._description: str | None = None
        self._from_cache = False
        self._engine_setup: engine_runtime.EngineSetup | None = None  # runtime settings of the active engines
        self._warmed: WarmUpReport = NO_WARM_UP  # the warm-up of the last activation from disk

    @contextlib.contextmanager
    def _track_build_step(self, step: BackendBuildStep) -> Iterator[dict[str, Any]]:
        """AITune's build-step record, with the step's wall time in ``seconds`` (where a tune's time goes)."""
        start = time.perf_counter()
        with super()._track_build_step(step) as result:
            try:
                yield result
            finally:
                result["seconds"] = round(time.perf_counter() - start, 3)
                logger.info("Build step %r took %.2f s.", step.value, result["seconds"])

    @property
    def build_seconds(self) -> dict[str, float]:
        """Wall seconds of each step of this backend's build, by step name; empty for a backend from ``ait.load``.

        Keys: ``cache_lookup`` (fingerprint and build cache lookup), ``quantize`` (INT8/FP8: copying, quantizing and
        calibrating the module), ``calibration`` (the part of ``quantize`` spent running the recorded calls for
        ModelOpt's calibration), ``compile`` (capture included), ``capture``
        (``torch.export`` or tracing, where the frontend measures it), ``artifact_save``, ``artifact_load`` (on a
        cache hit: copying the cached artifact, then loading it), ``self_check``, ``first_calls`` (the part of the
        self-check spent in the first call at each checked shape: TensorRT-RTX compiles its kernels there, and the
        CUDA-graph runner captures), ``kernel_cache_save``, ``early_kernels`` (``.pt2``: a twin of the engines
        compiling the self-check's kernels during ``artifact_save``, beside it, ``pipeline.early_kernels``). What
        ``ait.tune`` spends beyond the steps is AITune's own work (recording, sample handling, its correctness checks,
        memory clean-up).
        """
        timings: dict[str, float] = {}
        for result in self._build_results:
            if "seconds" not in result:
                continue
            timings[result["step"].name.lower()] = result["seconds"]
            if result.get("calibration_seconds") is not None:
                timings["calibration"] = result["calibration_seconds"]
            if result.get("capture_seconds") is not None:
                timings["capture"] = result["capture_seconds"]
            if result.get("first_call_seconds") is not None:
                timings["first_calls"] = result["first_call_seconds"]
            if "early_kernels" in result:
                timings["early_kernels"] = result["early_kernels"]["seconds"]
        return timings

    @property
    def early_kernel_shapes(self) -> list[list[tuple[int, ...]]]:
        """The input shapes whose kernels a twin of the engines compiled during the save (``pipeline.early_kernels``).

        Empty where that step did not run (formats with a fast save, a build from the cache or from ``ait.load``).
        """
        for result in reversed(self._build_results):
            if "early_kernels" in result:
                return [[tuple(shape) for shape in call] for call in result["early_kernels"]["shapes"]]
        return []

    @property
    def checked_shapes(self) -> list[list[tuple[int, ...]]]:
        """The input shapes (every tensor of the call) this build's self-check compared with eager PyTorch.

        Recorded calls first, then calls at the ends of the built range that no recorded call had (the recorded
        data tiled to the smallest and largest shapes). Empty for a backend from ``ait.load`` or the build cache.
        Where the build was made again for a narrower range (``pipeline.range_search``), the last check's shapes.
        """
        for result in reversed(self._build_results):
            if "checked_shapes" in result:
                return [[tuple(shape) for shape in call] for call in result["checked_shapes"]]
        return []

    @property
    def built_from_cache(self) -> bool:
        """True when this build reused an artifact from the build cache instead of compiling."""
        return self._from_cache

    @property
    def config(self) -> TorchTensorRTAotBackendConfig:
        """The backend's configuration."""
        return self._config

    @property
    def artifact_path(self) -> Path | None:
        """Where the compiled artifact lies, once built or loaded."""
        return None if self._entry is None else self._entry.artifact.path

    @property
    def artifact_format(self) -> str | None:
        """The artifact's format (``exported_program``, ``torchscript``, ``aot_inductor``), once built or loaded."""
        return None if self._entry is None else self._entry.artifact_format

    @property
    def precision(self) -> str | None:
        """How the engines got their precision: ``fp32``, ``autocast(float16)``, ``int8(rest float16)``, ..."""
        return None if self._entry is None else self._entry.precision

    @property
    def coverage(self) -> Coverage | None:
        """TensorRT engines built and operations in TensorRT vs PyTorch, once built (None when unknown)."""
        return None if self._entry is None else self._entry.coverage

    @property
    def kernel_cache_path(self) -> Path | None:
        """The kernel cache file kept with the artifact (``engine_runtime``), None where none was kept."""
        if self._entry is None or self._entry.kernel_cache is None:
            return None
        return self._entry.kernel_cache.path

    @property
    def kernel_settings(self) -> dict[str, Any]:
        """Runtime settings of the active engines (``engine_runtime``).

        Keys: ``strategy`` (kernel specialization, None where not set), ``engines`` (how many got the settings),
        ``kernel_cache_loaded_bytes`` (kernels given to them at activation, from the checkpoint or build cache).
        """
        if self._engine_setup is None:
            return dict(engine_runtime.NO_SETUP_REPORT)
        return self._engine_setup.report()

    @property
    def warmed_shapes(self) -> list[list[tuple[int, ...]]]:
        """The input shapes (every tensor of the call) the last activation warmed up (``warm_up``), in order.

        Empty right after a build (its self-check called those shapes already), without recorded calls (older
        checkpoints), or where the config's ``warm_up`` chose none.
        """
        return list(self._warmed.shapes)

    @property
    def runner(self) -> Any:
        """What ``infer`` calls: the loaded artifact, wrapped in a CUDA-graph runner when ``cuda_graphs``."""
        return self._runner

    def key(self) -> str:
        """Stable across processes; changes with any compile-relevant setting."""
        return f"{self.__class__.__name__}_{self._config.key()}"

    def describe(self) -> str:
        """Class name, the config fields that differ from the defaults, and (once built) the TensorRT coverage.

        Cached: AITune calls it on every public method call, ``infer`` included, and encoding the
        Torch-TensorRT settings each time cost more than running a small model's engines (benchmark.md).
        """
        if self._description is None:
            coverage = "" if self.coverage is None else f"; {self.coverage.describe()}"
            warmed = f"; warmed {len(self._warmed.shapes)} shapes" if self._warmed.shapes else ""
            self._description = f"{self.__class__.__name__}({self._config.describe()}{coverage}{warmed})"
        return self._description

    def _build(self, module: nn.Module, graph_spec: GraphSpec, samples: SampleStore, cache_dir: Path) -> Backend:
        """Run the build pipeline (``aitune_trt_aot.pipeline``); what it checked becomes what ``infer`` runs."""
        job = BuildJob(self._config, module, graph_spec, samples, self._device, cache_dir)
        with placement.current_device(self._device):  # engines are built, loaded and checked on the tuning device
            build = run_build(job, self._toolkit, self._track_build_step)
        self._entry = build.entry
        self._from_cache = build.from_cache
        self._use(build.activation)
        return self

    def _activate(self) -> None:
        """Check the artifact (present, intact, built for this machine), load it, warm it up, make it what runs."""
        if self._entry is None:
            raise RuntimeError(f"{self.name} has nothing to activate: build it or load it from a checkpoint first.")
        activation = activate(self._entry, self._device, self._toolkit)
        calls = chosen(self._entry.warm_calls, self._config.warm_up)
        warmed = warm_up(engines_of(activation, self._config.check_shapes), calls, activation.device)
        self._use(activation, warmed)

    def _use(self, activation: Activation, warmed: WarmUpReport = NO_WARM_UP) -> None:
        self._runner = activation.runner
        self._guard = activation.guard
        self._engine_setup = activation.engine_setup
        self._warmed = warmed
        self._description = None  # the coverage and the warm-up may be new

    def _infer(self, *args: Any, **kwargs: Any) -> Any:
        """Check the call against the built shape ranges, then run the engines."""
        if self._runner is None:
            raise RuntimeError(f"{self.name} is not active: call activate() (or ait.load) first.")
        return call_engines(self._runner, self._guard, self._config.check_shapes, args, kwargs)

    def _deactivate(self) -> None:
        """Drop the loaded engines; the artifact stays on disk."""
        self._runner = None
        self._guard = None
        self._engine_setup = None
        self._warmed = NO_WARM_UP

    def _deploy(self) -> None:
        """Load the artifact after ``ait.load`` (no recompilation)."""
        self._activate()

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry: config, artifact (an ``ArtifactPath``), format, input ranges and build facts."""
        if self._entry is None:
            raise RuntimeError(f"{self.name} has no compiled artifact to save: it must be built first.")
        return self._entry.to_dict(self.__class__.__name__)

    @classmethod
    def from_dict(cls, module: nn.Module | None, state_dict: dict) -> TorchTensorRTAotBackend:
        """Rebuild from an entry written by this package or by AITune's built-in backend."""
        if state_dict.get("type") != cls.__name__:
            raise ArtifactError(f"Checkpoint entry of type {state_dict.get('type')!r} is not a {cls.__name__}.")
        entry = CheckpointEntry.from_dict(state_dict)
        backend = cls(entry.config)
        backend._entry = entry
        backend._device = entry.device
        backend.state = BackendState.CHECKPOINT_LOADED
        return backend
