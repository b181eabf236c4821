"""Early kernels: while a slow save runs a C++ compiler, a twin of the engines compiles their kernels on the GPU.

TensorRT-RTX compiles kernels at an engine's first call at each input shape, and the self-check after a build makes
those first calls on the artifact loaded back from disk: 0.5-1.1 s of a small model's ``.pt2`` tune, about 3 s of
ResNet-50's, on an H100 (docs/benchmark.md). An ``aot_inductor`` save spends 1.4-6 s in the C++ compiler meanwhile,
with the GPU idle. So, for formats whose save is slow (``ArtifactFormat.slow_save``) on TensorRT-RTX, a *twin* of the
compiled module (the same graph, its engines deserialised afresh from the bytes the build produced, so the engines
being saved are never touched) makes the self-check's calls in a thread once the save is down to its C++ commands,
once per shape, with the kernel strategy the loaded artifact will run with and a runtime cache that the loaded
engines are then given (``activation.activate(live_kernel_cache=...)``). Engines given the same live cache reuse its
kernels: a second engine instance's first call took 0.107 s instead of 2.46 s (ResNet-50, docs/benchmark.md). The
twin waits for the C++ commands because ``torch.export`` and Inductor trace with ``torch.fx``, which patches
``nn.Module.__call__`` for every thread while it traces.

The twin shares the weights of the graph's PyTorch-run parts; its engines are a second copy on the GPU until the
save ends (TensorRT-RTX engines hold their weights), and are dropped before the artifact is loaded back.

Nothing is taken on trust: the self-check still makes every call on the artifact loaded from disk and compares it
with eager PyTorch; only its kernel compiles moved. The twin's first-call seconds are what a load without those
kernels pays at each shape, so they, not the self-check's shortened first calls, are recorded for the warm-up at
load (``warm_up``). A twin call that raises, or that TensorRT logs an error for, ends the step and discards the
cache: the loaded engines then start from an empty one, as without this step.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from aitune.torch.utils.module import move_tensors_to_device
from torch import nn

from aitune_trt_aot import engine_runtime
from aitune_trt_aot.compiled import CompiledModel
from aitune_trt_aot.engine_errors import CheckedEngines, process_watch
from aitune_trt_aot.pipeline.job import BuildJob
from aitune_trt_aot.pipeline.self_check import checked_calls
from aitune_trt_aot.plan import BuildPlan, uses_cuda_graphs
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.validation import tensor_shapes

logger = logging.getLogger(__name__)

Shapes = tuple[tuple[int, ...], ...]
SWITCH_ENV = "AITUNE_TRT_AOT_EARLY_KERNELS"


@dataclass(frozen=True)
class EarlyKernels:
    """The kernels a twin of the engines compiled during the save.

    Attributes:
        cache: The TensorRT-RTX runtime cache holding them, for the loaded engines to share.
        first_calls: Per call's input shapes, in the order called, the twin's first call there (seconds).
        seconds: Wall time of the whole step, the twin's set-up included.

    """

    cache: Any
    first_calls: dict[Shapes, float]
    seconds: float

    def report(self) -> dict[str, Any]:
        """``shapes``, ``first_call_seconds`` (together) and ``seconds``, JSON-safe, for the build report."""
        return {
            "shapes": [[list(shape) for shape in call] for call in self.first_calls],
            "first_call_seconds": round(sum(self.first_calls.values()), 3),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class KernelsMeanwhile:
    """The step, seen from the save: a thread that starts its calls once :meth:`native_compile_started` is called.

    After :meth:`wait`, :attr:`found` holds what it compiled (None: nothing usable), :attr:`problem` why not.
    """

    thread: threading.Thread | None = None
    found: EarlyKernels | None = None
    problem: str | None = None
    go: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False

    def native_compile_started(self) -> None:
        """The save is down to native work: the twin may run (``ArtifactFormat.save``'s ``on_native_compile``)."""
        self.go.set()

    def wait(self) -> None:
        """Wait for the thread, if one runs; one still waiting for the go does nothing."""
        if self.thread is None:
            return
        if not self.go.is_set():
            self.cancelled = True
            self.go.set()
        self.thread.join()
        self.thread = None


def applies(plan: BuildPlan, job: BuildJob) -> bool:
    """Whether the build compiles kernels during the save: a slow save, engines that share a runtime cache, a GPU.

    ``AITUNE_TRT_AOT_EARLY_KERNELS=0`` turns the step off (the self-check then compiles the kernels, as before it).
    """
    artifact_format = plan.artifact_format
    return (
        os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
        and artifact_format.slow_save
        and artifact_format.runtime_settings
        and plan.stack.tensorrt_rtx
        and job.device.type == "cuda"
    )


def engine_twin(module: nn.Module) -> nn.Module | None:
    """A copy of ``module`` whose Torch-TensorRT engines are new, not yet set up; None where it cannot be made.

    ``TorchTensorRTModule`` copies share their engine object (its ``__deepcopy__``): the twin's holders drop it, and
    :func:`start_engines` makes new ones from the serialised engines they keep. The parameters and buffers of the
    parts PyTorch runs are shared, not copied (the twin only runs inference). A module that holds engines any other
    way (graph attributes) has no twin.
    """
    holders = _holders(module)
    if not holders or len(engine_runtime.reachable_engines(module)) != len(holders):
        return None
    if any(not getattr(holder, "serialized_engine", None) for holder in holders):
        return None
    twin = copy_sharing_weights(module)
    release_engines(twin)
    return twin


def copy_sharing_weights(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that shares its parameters and buffers: for a copy that only runs inference."""
    shared: dict[int, Any] = {id(tensor): tensor for tensor in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, shared)


def start_engines(twin: nn.Module) -> None:
    """Deserialise the engines of a :func:`engine_twin` (new engine instances, on the current device)."""
    for holder in _holders(twin):
        holder.setup_engine()


def release_engines(twin: nn.Module) -> None:
    """Drop the engines of a :func:`engine_twin` now (a graph module is freed only by the cycle collector)."""
    for holder in _holders(twin):
        holder.engine = None


def _holders(module: nn.Module) -> list[nn.Module]:
    from torch_tensorrt.dynamo.runtime import TorchTensorRTModule

    return [m for m in module.modules() if isinstance(m, TorchTensorRTModule)]


def first_calls(runner: Any, calls: list[Any], guard: ShapeGuard, device: torch.device) -> dict[Shapes, float]:
    """Call ``runner`` once per call in ``calls`` (the guard's preparation first); each first call's seconds.

    Raises what a call raises; each call is waited for on the GPU, so its seconds include the kernels' compile.
    """
    seconds: dict[Shapes, float] = {}
    for call in calls:
        args, kwargs = move_tensors_to_device(call, device)
        args, kwargs = guard.prepare(args, kwargs, check_shapes=False)
        start = time.perf_counter()
        with torch.no_grad():
            runner(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[tensor_shapes(call)] = time.perf_counter() - start
    return seconds


def _compile_kernels(twin: nn.Module, strategy: str, job: BuildJob, guard: ShapeGuard, step: KernelsMeanwhile) -> None:
    """The thread: set the twin's engines up, give them ``strategy`` and a new cache, make the self-check's calls."""
    step.go.wait()
    if step.cancelled:
        release_engines(twin)
        return
    start = time.perf_counter()
    try:
        with torch.cuda.device(job.device):
            start_engines(twin)
            cache = engine_runtime.new_kernel_cache()
            engine_runtime.configure(twin, strategy, cache)
            calls = [call for _, call in checked_calls(guard, job.samples)]
            watch = process_watch()  # None: switched off (activations warn about that), calls go unchecked
            runner = twin if watch is None else CheckedEngines(twin, "the engines' twin", watch)
            seconds = first_calls(runner, calls, guard, job.device)
        step.found = EarlyKernels(cache, seconds, time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - any failure: the self-check compiles the kernels, as without this
        step.problem = f"{type(error).__name__}: {error}"
        logger.info("No kernels compiled during the save (%s); the self-check compiles them.", step.problem)
    finally:
        release_engines(twin)


@contextmanager
def kernels_meanwhile(
    compiled: CompiledModel, plan: BuildPlan, guard: ShapeGuard, job: BuildJob
) -> Iterator[KernelsMeanwhile]:
    """While the body runs (the save), compile the self-check's kernels on a twin of ``compiled``'s engines.

    The body passes :meth:`KernelsMeanwhile.native_compile_started` to the save. Where the step does not apply
    (:func:`applies`) or no twin can be made, nothing else runs. On exit, whether the body raised or not, the thread is
    waited for: :attr:`KernelsMeanwhile.found` then holds what it compiled.
    """
    step = KernelsMeanwhile()
    twin = None
    if applies(plan, job):
        try:
            twin = engine_twin(compiled.module)
        except Exception as error:  # noqa: BLE001 - no twin: the self-check compiles the kernels, as without this
            step.problem = f"no twin of the engines ({type(error).__name__}: {error})"
            logger.info("No kernels compiled during the save: %s.", step.problem)
    if twin is not None:
        strategy = engine_runtime.kernel_strategy(
            job.config.kernel_specialization, uses_cuda_graphs(job.config, plan.artifact_format.name)
        )
        step.thread = threading.Thread(
            target=_compile_kernels,
            args=(twin, strategy, job, guard, step),
            name="aitune_trt_aot-early-kernels",
            daemon=True,
        )
        del twin  # the thread's only
        step.thread.start()
    try:
        yield step
    finally:
        step.wait()
