"""``TorchTensorRTAotBackend``: the AITune glue that builds, persists and runs Torch-TensorRT engines.

The class is a direct subclass of AITune's ``Backend`` named ``TorchTensorRTAotBackend``, the same
name as AITune's built-in backend. AITune maps checkpoint entries to classes with
``{c.__name__: c for c in Backend.__subclasses__()}``; the built-in class is always created first
(importing ``Backend`` imports it), so once this module is imported the dict keeps this class, and
every checkpoint entry of that name, ours or the built-in's, loads here. See ``docs/registration.md``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
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

from aitune_trt_aot import build_cache, engine_runtime, hints
from aitune_trt_aot.checkpoint import FORMAT_VERSION, CheckpointEntry
from aitune_trt_aot.compat import build_environment, incompatibility
from aitune_trt_aot.compiled import CompiledModel, Coverage
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from aitune_trt_aot.errors import ArtifactError, BuildError, MissingRequirementError, UnsupportedInputsError
from aitune_trt_aot.files import file_digest, write_atomically
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.frontends import CompileRequest
from aitune_trt_aot.plan import BuildPlan, autocast_fallback, make_plan, uses_cuda_graphs
from aitune_trt_aot.precision import output_dtypes, precision_boundary
from aitune_trt_aot.settings import convert_settings
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.stack import current_stack, require_cuda, require_torch_tensorrt
from aitune_trt_aot.validation import output_mismatch, self_check_calls, tensor_shapes
from aitune_trt_aot.wrappers import bind_constants

logger = logging.getLogger(__name__)

SELF_CHECK_SHAPES = 3  # differently shaped recorded calls compared with eager after each build
SELF_CHECK_REPEATS = 3  # calls per shape


class TorchTensorRTAotBuildStep(BackendBuildStep):
    """The steps of a build, as AITune's build report lists them."""

    CACHE_LOOKUP = "Build cache lookup"
    COMPILE = "Capture and Torch-TensorRT compile"
    ARTIFACT_SAVE = "Compiled artifact save"
    ARTIFACT_LOAD = "Compiled artifact load"
    SELF_CHECK = "Compare with eager PyTorch"
    KERNEL_CACHE_SAVE = "Kernel cache save"


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
        self._entry: CheckpointEntry | None = None
        self._runner: Any = None
        self._guard: ShapeGuard | None = None
        self._description: str | None = None
        self._from_cache = False
        self._engine_setup: engine_runtime.EngineSetup | None = None  # runtime settings of the active engines

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

        Keys: ``cache_lookup`` (fingerprint and build cache lookup), ``compile`` (capture included), ``capture``
        (``torch.export`` or tracing, where the frontend measures it), ``artifact_save``, ``artifact_load`` (on a
        cache hit: copying the cached artifact, then loading it), ``self_check``, ``first_calls`` (the part of the
        self-check spent in the first call at each checked shape: TensorRT-RTX compiles its kernels there, and the
        CUDA-graph runner captures), ``kernel_cache_save``. What ``ait.tune`` spends beyond the steps is AITune's
        own work (recording, sample handling, its correctness checks, memory clean-up).
        """
        timings: dict[str, float] = {}
        for result in self._build_results:
            if "seconds" not in result:
                continue
            timings[result["step"].name.lower()] = result["seconds"]
            if result.get("capture_seconds") is not None:
                timings["capture"] = result["capture_seconds"]
            if result.get("first_call_seconds") is not None:
                timings["first_calls"] = result["first_call_seconds"]
        return timings

    @property
    def checked_shapes(self) -> list[list[tuple[int, ...]]]:
        """The input shapes (every tensor of the call) this build's self-check compared with eager PyTorch.

        Recorded calls first, then calls at the ends of the built range that no recorded call had (the recorded
        data tiled to the smallest and largest shapes). Empty for a backend from ``ait.load`` or the build cache.
        """
        for result in self._build_results:
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
        """How the engines got their precision (``fp32``, ``autocast(float16)``, ``cast_module(float16)``)."""
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
            self._description = f"{self.__class__.__name__}({self._config.describe()}{coverage})"
        return self._description

    def _build(self, module: nn.Module, graph_spec: GraphSpec, samples: SampleStore, cache_dir: Path) -> Backend:
        """Plan, compile, save the artifact, load what was saved, and check it against eager PyTorch."""
        torch_tensorrt = require_torch_tensorrt()
        require_cuda()
        settings = convert_settings(self._config.compile_config)
        plan = make_plan(self._config, current_stack(), graph_spec, samples[0], settings)

        module = module.eval()
        move_module_to_device(module, self._device)
        guard = ShapeGuard.from_graph_spec(graph_spec, samples[0], module.forward, plan.ranges)
        # Plain-valued arguments are specialised into the engines: capture a module without them.
        capture_module = bind_constants(module, guard.constants)
        capture_spec = dataclasses.replace(
            graph_spec, forward_signature=ForwardSignature.from_callable(capture_module.forward)
        )
        request = CompileRequest(
            module=capture_module,
            graph_spec=capture_spec,
            ranges=plan.ranges,
            sample=guard.strip_constants(samples[0]),
            device=self._device,
            settings=plan.precision.settings,
            options=plan.options,
            torch_tensorrt=torch_tensorrt,
        )
        fingerprint = None
        if self._config.build_cache:
            with self._track_build_step(TorchTensorRTAotBuildStep.CACHE_LOOKUP) as result:
                try:
                    fingerprint = self._fingerprint(module, plan, guard)
                except Exception as error:  # a model the fingerprint cannot read (e.g. quantized weights): no cache
                    logger.warning(
                        "Build cache skipped: cannot fingerprint this model (%s: %s).", type(error).__name__, error
                    )
                cached = None if fingerprint is None else build_cache.lookup(fingerprint)
                result["cache_hit"] = cached is not None
            if cached is not None and self._reuse_cached_build(cached, plan, module, samples, guard, cache_dir):
                return self
        with self._track_build_step(TorchTensorRTAotBuildStep.COMPILE) as result:
            compiled, plan = self._compile(plan, request)
            result["precision"] = plan.precision.describe()
            result["coverage"] = compiled.coverage.describe()
            result["capture_seconds"] = compiled.capture_seconds
        _refuse_without_engines(plan, compiled.coverage, settings)

        compiled.constants = dict(guard.constants)
        artifact = ArtifactPath(cache_dir, f"model{plan.artifact_format.suffix}")
        with self._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_SAVE) as result:
            write_atomically(
                artifact.path,
                partial(plan.artifact_format.save, compiled, pickle_protocol=self._config.pickle_protocol),
            )
            result["compiled_model_size_bytes"] = artifact.path.stat().st_size
        coverage = compiled.coverage
        del compiled

        self._entry = CheckpointEntry(
            config=self._config,
            artifact=artifact,
            artifact_format=plan.artifact_format.name,
            device=self._device,
            shape_guard=guard,
            precision=plan.precision.describe(),
            coverage=coverage,
            checksum=file_digest(artifact.path),
            built_for=build_environment(self._device),
        )
        self._description = None
        # Run the persisted artifact, so what tuning validates is what production loads.
        with self._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_LOAD):
            try:
                self._activate(checksum_verified=True)  # hashed just above
            except Exception as error:
                raise BuildError(
                    f"The {plan.artifact_format.name!r} artifact written by {plan.describe()} cannot be loaded back "
                    f"({type(error).__name__}: {error}). {hints.for_unloadable_artifact(coverage)}"
                ) from error
        with self._track_build_step(TorchTensorRTAotBuildStep.SELF_CHECK) as result:
            self._check_against_eager(plan, module, samples, guard, coverage, result)
        with self._track_build_step(TorchTensorRTAotBuildStep.KERNEL_CACHE_SAVE):
            self._keep_kernel_cache(cache_dir)
        logger.info("Built %s: %s; %s; into %s.", self.describe(), plan.describe(), coverage.describe(), artifact)
        if fingerprint is not None:
            build_cache.store(
                fingerprint, artifact.path, self._entry.build_facts(), kernel_cache=self.kernel_cache_path
            )
        return self

    def _keep_kernel_cache(self, cache_dir: Path) -> None:
        """Write the kernels the self-check compiled beside the artifact, so that loads skip compiling them."""
        if self._engine_setup is None or self._entry is None:
            return
        data = engine_runtime.kernel_cache_bytes(self._engine_setup.kernel_cache)
        if not data:
            return
        kernels = ArtifactPath(cache_dir, engine_runtime.KERNEL_CACHE_NAME)
        try:
            checksum = engine_runtime.write_kernel_cache(data, kernels.path)
        except OSError as error:  # only first-call speed is lost
            logger.warning("Could not write the kernel cache %s (%s); loads will compile kernels.", kernels, error)
            return
        self._entry.kernel_cache = kernels
        self._entry.kernel_cache_checksum = checksum

    def _fingerprint(self, module: nn.Module, plan: BuildPlan, guard: ShapeGuard) -> str:
        config = self._config.to_dict()
        del config["build_cache"]  # whether to use the cache does not change what is built
        facts = {
            "config": config,
            "plan": plan.describe(),
            "inputs": guard.to_dict(),
            "machine": build_environment(self._device),
            "checkpoint_format": FORMAT_VERSION,  # an older reader could not load what this version writes
        }
        return build_cache.build_fingerprint(module, facts)

    def _reuse_cached_build(
        self,
        cached: build_cache.CachedBuild,
        plan: BuildPlan,
        module: nn.Module,
        samples: SampleStore,
        guard: ShapeGuard,
        cache_dir: Path,
    ) -> bool:
        """Take the artifact of an identical earlier build, load it and check it against eager; False if unusable.

        A cached artifact that does not load or does not match eager (the model changed in a way the
        fingerprint cannot see) is dropped from the cache, and the caller builds afresh.
        """
        artifact = ArtifactPath(cache_dir, cached.artifact.name)
        kernels = None
        if cached.kernel_cache is not None and cached.kernel_cache.is_file():
            kernels = ArtifactPath(cache_dir, cached.kernel_cache.name)
        self._entry = CheckpointEntry.from_build_facts(
            cached.facts,
            config=self._config,
            artifact=artifact,
            device=self._device,
            shape_guard=guard,
            kernel_cache=kernels,
        )
        self._description = None
        try:
            with self._track_build_step(TorchTensorRTAotBuildStep.ARTIFACT_LOAD):
                write_atomically(artifact.path, partial(shutil.copyfile, cached.artifact))
                if kernels is not None:
                    write_atomically(kernels.path, partial(shutil.copyfile, cached.kernel_cache))
                self._activate(checksum_verified=True)  # build_cache.lookup hashed the bytes just copied
            with self._track_build_step(TorchTensorRTAotBuildStep.SELF_CHECK):
                # These exact bytes passed the full check when stored, on a machine with the same facts: one call
                # is enough to catch a model changed in a way the fingerprint cannot see.
                mismatch = self._first_mismatch(module, samples, plan.precision.dtype, shapes_to_check=1, repeats=1)
            if mismatch is not None:
                raise BuildError(f"it does not reproduce eager PyTorch ({mismatch.problem})")
        except Exception as error:
            logger.warning(
                "The build cached in %s cannot be reused (%s: %s); dropping it and building afresh.",
                cached.folder,
                type(error).__name__,
                error,
            )
            build_cache.discard(cached.folder)
            self._deactivate()
            self._entry = None
            self._description = None
            artifact.path.unlink(missing_ok=True)
            if kernels is not None:
                kernels.path.unlink(missing_ok=True)
            return False
        self._from_cache = True
        logger.info("Reused the build cached in %s for %s.", cached.folder, self.describe())
        return True

    def _compile(self, plan: BuildPlan, request: CompileRequest) -> tuple[CompiledModel, BuildPlan]:
        """Compile under ``plan``; with ``precision_route="auto"`` fall back from autocast to a cast module.

        Torch-TensorRT 2.14's autocast fails on some graphs (a dynamic-batch transformer encoder:
        ``'SymInt' object has no attribute 'to'``); casting the module builds them in reduced precision.
        """
        try:
            return self._compile_with(plan, request), plan
        except (MissingRequirementError, UnsupportedInputsError, BuildError):
            raise
        except Exception as error:
            fallback = autocast_fallback(plan, self._config, convert_settings(self._config.compile_config))
            if fallback is None:
                raise _build_error(plan, error) from error
            logger.warning(
                "Torch-TensorRT autocast to %s failed for this model (%s: %s); building with the module cast to %s "
                "instead (precision_route='cast_module').",
                plan.precision.dtype,
                type(error).__name__,
                error,
                plan.precision.dtype,
            )
            try:
                return self._compile_with(fallback, request), fallback
            except Exception as second:
                raise _build_error(fallback, second) from second

    @staticmethod
    def _compile_with(plan: BuildPlan, request: CompileRequest) -> CompiledModel:
        module = request.module
        precision = plan.precision
        if precision.dtype is not None and precision.route != "weak_typing":
            sample = move_tensors_to_device(request.sample, request.device)
            out_dtypes = output_dtypes(module, sample)
            if precision.route == "cast_module":
                # Cast a copy: AITune may still run the original module (eager fallback, other backends).
                module = precision_boundary(copy.deepcopy(module).to(precision.dtype), precision.dtype, out_dtypes)
            else:
                module = precision_boundary(module, None, out_dtypes)
        return plan.frontend.compile(dataclasses.replace(request, module=module, settings=precision.settings))

    def _check_against_eager(
        self,
        plan: BuildPlan,
        module: nn.Module,
        samples: SampleStore,
        guard: ShapeGuard,
        coverage: Coverage,
        result: dict[str, Any],
    ) -> None:
        """Run recorded calls, and calls at the ranges' ends, through the loaded artifact and eager; refuse mismatches.

        Records the shapes compared in ``result["checked_shapes"]`` and, in ``result["first_call_seconds"]``, how
        long the first call at each of them took, together.
        """
        first_calls: list[float] = []
        checked: list[list[tuple[int, ...]]] = []
        try:
            range_ends = guard.range_end_samples(samples[0])
        except Exception as error:  # an input layout the resizing does not handle: check the recorded calls only
            logger.warning("Self-check: no calls at the range ends (%s: %s).", type(error).__name__, error)
            range_ends = []
        mismatch = self._first_mismatch(
            module,
            samples,
            plan.precision.dtype,
            range_ends=range_ends,
            first_calls=first_calls,
            checked=checked,
        )
        result["first_call_seconds"] = round(sum(first_calls), 3)
        result["checked_shapes"] = checked
        if mismatch is None:
            return
        self._deactivate()
        raise BuildError(
            f"The engines built with {plan.describe()} do not reproduce eager PyTorch on "
            f"{'a recorded input' if mismatch.recorded else 'an input at the end of the built shape range'} "
            f"({mismatch.problem}). {hints.for_mismatch(mismatch.recorded, plan.frontend.name, coverage)}"
        )

    def _first_mismatch(
        self,
        module: nn.Module,
        samples: SampleStore,
        reduced: torch.dtype | None,
        shapes_to_check: int = SELF_CHECK_SHAPES,
        repeats: int = SELF_CHECK_REPEATS,
        range_ends: Sequence[tuple[tuple, dict]] = (),
        first_calls: list[float] | None = None,
        checked: list[list[tuple[int, ...]]] | None = None,
    ) -> Mismatch | None:
        """Compare up to ``shapes_to_check`` differently shaped recorded calls, then the ``range_ends`` calls.

        Each shape is called ``repeats`` times, because some runtimes change kernels after the first call at a
        shape. A range-end call that eager PyTorch itself cannot run (out of memory, a constraint between inputs
        the tiling broke) is skipped. The seconds of each shape's first call (call and comparison) are appended
        to ``first_calls``, and the shapes compared to ``checked``, when given.
        """
        for is_recorded, sample in self_check_calls(samples, shapes_to_check, range_ends):
            shapes = tensor_shapes(sample)
            args, kwargs = move_tensors_to_device(sample, self._device)
            with torch.no_grad():
                try:
                    expected = module(*args, **kwargs)
                except Exception as error:
                    if is_recorded:
                        raise
                    logger.warning(
                        "Self-check: the call at the end of the built range, shapes %s, is not compared: eager "
                        "PyTorch cannot run it (%s: %s).",
                        list(shapes),
                        type(error).__name__,
                        error,
                    )
                    continue
                for attempt in range(1, repeats + 1):
                    start = time.perf_counter()
                    try:
                        actual = self._infer(*args, **kwargs)
                    except Exception as error:  # the saved artifact does not run on this input
                        return Mismatch(
                            is_recorded,
                            f"shapes {list(shapes)}, call {attempt}: it raised {type(error).__name__}: {error}",
                        )
                    problem = output_mismatch(actual, expected, reduced)  # reads the outputs: waits for the GPU
                    if attempt == 1 and first_calls is not None:
                        first_calls.append(time.perf_counter() - start)
                    if problem is not None:
                        return Mismatch(is_recorded, f"shapes {list(shapes)}, call {attempt} of {repeats}: {problem}")
            if checked is not None:
                checked.append(list(shapes))
        return None

    def _activate(self, checksum_verified: bool = False) -> None:
        """Check the artifact (present, intact, built for this machine), load it, make it what ``infer`` runs.

        ``checksum_verified``: the caller hashed these bytes moments ago (a build, a cache hit), so reading the
        file again to hash it is skipped (0.1-0.2 s for ResNet-50). Loads from a checkpoint always hash.
        """
        if self._entry is None:
            raise RuntimeError(f"{self.name} has nothing to activate: build it or load it from a checkpoint first.")
        entry = self._entry
        path = entry.artifact.path
        if not path.is_file():
            raise ArtifactError(
                f"The compiled artifact {path} is missing: the checkpoint or cache folder is incomplete. Re-run "
                "ait.tune, or load the .ait checkpoint it was saved in."
            )
        if not checksum_verified and entry.checksum is not None and file_digest(path) != entry.checksum:
            raise ArtifactError(
                f"The compiled artifact {path} is damaged: its bytes do not match the checksum recorded when it was "
                "saved. Restore the .ait checkpoint from a good copy, or re-run ait.tune."
            )
        device = self._device or entry.device or torch.device("cuda")
        problem = incompatibility(entry.built_for, device)
        if problem is not None:
            raise ArtifactError(f"Cannot run {path}: {problem}")
        require_cuda()
        artifact_format = FORMATS[entry.artifact_format]
        runner = artifact_format.load(path, device)
        captured = uses_cuda_graphs(self._config, entry.artifact_format)
        self._engine_setup = None
        if artifact_format.runtime_settings and engine_runtime.supported():
            self._configure_engines(runner, entry, captured)
        elif self._config.kernel_specialization != "auto":
            logger.warning(
                "kernel_specialization=%r is not applied: %s has no runtime settings for these engines.",
                self._config.kernel_specialization,
                current_stack().describe(),
            )
        if captured:
            runner = CudaGraphRunner(runner, device, fall_back=self._config.cuda_graphs == "auto")
        self._runner = runner
        self._guard = entry.shape_guard

    def _configure_engines(self, runner: Any, entry: CheckpointEntry, captured: bool) -> None:
        """Kernel strategy and kernel cache for the loaded engines; where that fails they keep TensorRT's defaults.

        ``captured``: the engines will run inside CUDA graphs (their kernels must not change after capture).
        """
        kernels = None if entry.kernel_cache is None else entry.kernel_cache.path
        strategy = engine_runtime.kernel_strategy(self._config.kernel_specialization, captured)
        try:
            self._engine_setup = engine_runtime.apply(runner, strategy, kernels, entry.kernel_cache_checksum)
        except Exception as error:  # a Torch-TensorRT release without this API: slower first calls, same results
            logger.warning(
                "Could not set the engines' runtime settings (%s: %s); they run with TensorRT-RTX's defaults.",
                type(error).__name__,
                error,
            )
            return
        if kernels is not None and not self._engine_setup.loaded_bytes:
            # Missing or damaged (engine_runtime warned): a later save must not carry it, or copy a missing file.
            entry.kernel_cache, entry.kernel_cache_checksum = None, None

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
        self._engine_setup = None

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


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """How the loaded engines departed from eager PyTorch on one call of the self-check."""

    recorded: bool  # a recorded call (else a call at a range end)
    problem: str


def _refuse_without_engines(plan: BuildPlan, coverage: Coverage, settings: Any) -> None:
    """A build with no TensorRT engine would ship a "TensorRT" artifact that only re-runs PyTorch: refuse it."""
    if coverage.engines > 0:
        return
    min_block = getattr(settings, "min_block_size", None)
    raise BuildError(
        f"{plan.describe()} built no TensorRT engine: all {coverage.pytorch_ops} operations of this graph stay in "
        f"PyTorch, so the artifact would not use TensorRT. {hints.for_no_engines(min_block)}"
    )


def _build_error(plan: BuildPlan, error: Exception) -> BuildError:
    return BuildError(
        f"Torch-TensorRT could not build {plan.describe()}: {type(error).__name__}: {error}."
        + hints.after_failed_build(plan.frontend.name)
    )
