"""The build pipeline on the CPU: a tracing frontend, a ``torch.save`` format, and a toolkit every machine meets.

Registered like a real IR and format (one registry line each), they let CPU tests drive whole builds: the
orchestration, never TensorRT.

``TracedFrontend`` "compiles" by tracing the module into an aten graph (``make_fx``) at the captured call, so what
is saved, loaded back and checked is a different object from the eager module, as with real engines; a trace keeps
only the path of the call it saw, like ``torch.jit.trace``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_map

from aitune_trt_aot.compiled import CompiledModel, Coverage, count_ops, layer_precisions
from aitune_trt_aot.errors import EngineCallError
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.frontends import FRONTENDS, CompileRequest, Frontend
from aitune_trt_aot.quantization import quantized_export
from aitune_trt_aot.ranges import clamped_to_proof, with_max_shape
from aitune_trt_aot.stack import Stack
from aitune_trt_aot.toolkit import Toolkit

CPU_FEATURE = "cpu_trace_frontend"
CPU_STACK = Stack(torch.__version__, None, None, False, {CPU_FEATURE: True})
CPU_TOOLKIT = Toolkit(require_build=lambda: None, require_run=lambda: None, stack=lambda: CPU_STACK)


class TracedEngines(nn.Module):
    """What :class:`TracedFrontend` builds: a traced graph taking the positional, then the keyword tensors.

    ``offset`` is added to every floating output: a deliberately wrong build for the mismatch paths; with
    ``wrong_above``, only to calls whose first tensor has more rows than that (engines wrong near a range's top).
    ``raises_above``: calls of more rows than that raise :class:`EngineCallError`, as TensorRT-RTX failing its kernel
    compile at a shape does (seen on an H100 at batch 262144 of the token encoder, issue 29); after one such call
    every later call of the same loaded engines raises too (the engines a failed call may leave behind).
    ``wrong_sticks``: after one call of more than ``wrong_above`` rows, every later call of the same loaded engines at
    a size they had not run before is wrong too, without an error (seen on an H100 at batch 262144 of the fp32 token
    encoder: a wrong result, then wrong results at every new size).
    """

    def __init__(
        self,
        graph: nn.Module,
        keywords: list[str],
        offset: float = 0.0,
        wrong_above: int | None = None,
        raises_above: int | None = None,
        wrong_sticks: bool = False,
    ) -> None:
        super().__init__()
        self.graph = graph
        self.keywords = keywords
        self.offset = offset
        self.wrong_above = wrong_above
        self.raises_above = raises_above
        self.wrong_sticks = wrong_sticks
        self.failed = False
        self.was_wrong = False
        self.sizes_run: set[int] = set()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.raises_above is not None and (self.failed or args[0].shape[0] > self.raises_above):
            self.failed = True
            raise EngineCallError(
                f"TensorRT failed while running the engines on input shapes [{tuple(args[0].shape)}]: "
                "IExecutionContext::enqueueV3: Error Code 1: Myelin (cuDNN graph compilation failed: No valid engine "
                "configs for Matmul_MUL_)"
            )
        outputs = self.graph(*args, *[kwargs[k] for k in self.keywords])
        size = args[0].shape[0]
        stuck = self.wrong_sticks and self.was_wrong and size not in self.sizes_run
        if not stuck:
            self.sizes_run.add(size)
        if not self.offset or (not stuck and self.wrong_above is not None and size <= self.wrong_above):
            return outputs
        self.was_wrong = True
        return tree_map(
            lambda t: t + self.offset if isinstance(t, torch.Tensor) and t.is_floating_point() else t, outputs
        )


class TracedFrontend(Frontend):
    """A CPU frontend: traces the module at the captured call; records each request it compiled.

    A quantized module is traced under ModelOpt's export mode, as the dynamo frontend exports it, and its layers
    counted from the trace.

    Attributes:
        coverage: What it reports having built (default: one engine holding every traced operation).
        offset: Added to every floating output of what it builds (0: a correct build).
        wrong_above: Add ``offset`` only to calls of more rows than this (None: to every call).
        proven_max: Build the first axis of every input only up to this, as ``torch.export`` does where it proves
            a smaller dimension than requested (None: the requested ranges).
        fail_autocast: Raise Torch-TensorRT 2.14's autocast error for requests with autocast on.
        delay: Seconds each compile takes (a slow build, for processes that wait for it).
        error: Raised by every compile, after ``delay`` (a build that fails).
        fails_above: Raise TensorRT's engine-build failure for requests whose first input's first axis goes above
            this (engines TensorRT cannot build that large; None: every size builds).
        raises_above: What it builds raises ``EngineCallError`` at calls of more rows than this, and at every call
            after that (``TracedEngines``; None: no call raises).
        wrong_sticks: What it builds, after a wrong call, is wrong at every size it had not run (``TracedEngines``).
        requests: The compile requests it got, in order.

    """

    name = "cpu_trace"
    feature = CPU_FEATURE
    formats = ("torch_save",)
    typed_precision = True
    quantizes = True

    def __init__(
        self,
        coverage: Coverage | None = None,
        offset: float = 0.0,
        fail_autocast: bool = False,
        wrong_above: int | None = None,
        proven_max: int | None = None,
        delay: float = 0.0,
        error: Exception | None = None,
        fails_above: int | None = None,
        raises_above: int | None = None,
        wrong_sticks: bool = False,
    ) -> None:
        self.coverage = coverage
        self.offset = offset
        self.fail_autocast = fail_autocast
        self.wrong_above = wrong_above
        self.proven_max = proven_max
        self.delay = delay
        self.error = error
        self.fails_above = fails_above
        self.raises_above = raises_above
        self.wrong_sticks = wrong_sticks
        self.requests: list[CompileRequest] = []

    def compile(self, request: CompileRequest) -> CompiledModel:
        self.requests.append(request)
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        top = request.ranges[0].max_shape[0]
        if self.fails_above is not None and (top is None or top > self.fails_above):
            # As Torch-TensorRT does: TensorRT's builder reports why through its logger, then the build returns None.
            logging.getLogger("torch_tensorrt [TensorRT Conversion Context]").error(
                "IBuilder::buildSerializedNetwork: Error Code 10: Internal Error (no implementation for this size)"
            )
            raise RuntimeError("TensorRT build_serialized_network returned None; engine build failed.")
        if self.fail_autocast and request.settings.enable_autocast:
            raise AttributeError("'SymInt' object has no attribute 'to'")
        args, kwargs = request.sample
        keywords = list(kwargs)
        module = request.module

        def call(*flat: Any) -> Any:
            return module(*flat[: len(args)], **dict(zip(keywords, flat[len(args) :], strict=True)))

        with torch.no_grad(), quantized_export(request.quantized):
            graph = make_fx(call)(*args, *kwargs.values())
        layers = layer_precisions(graph) if request.quantized else None
        coverage = self.coverage or Coverage(engines=1, tensorrt_ops=count_ops(graph), pytorch_ops=0, layers=layers)
        ranges = None
        if self.proven_max is not None:
            proof = [with_max_shape(r, (self.proven_max, *r.max_shape[1:])) for r in request.ranges]
            ranges = clamped_to_proof(request.ranges, proof)
        return CompiledModel(
            module=TracedEngines(graph, keywords, self.offset, self.wrong_above, self.raises_above, self.wrong_sticks),
            sample=request.sample,
            coverage=coverage,
            ranges=ranges,
        )


class GeneralTracedFrontend(TracedFrontend):
    """:class:`TracedFrontend` registered under the general IR's name (``hints.GENERAL_IR``), for its hints."""

    name = "dynamo"


class TorchSaveFormat(ArtifactFormat):
    """The compiled module pickled with ``torch.save``; loading fails with ``load_error`` when it is set."""

    name = "torch_save"
    suffix = ".pt"
    cuda_graphs = False
    quantized = True

    def __init__(self, load_error: Exception | None = None) -> None:
        self.load_error = load_error
        self.loads: list[Path] = []

    def save(
        self,
        compiled: CompiledModel,
        path: Path,
        *,
        pickle_protocol: int,
        on_native_compile: Callable[[], None] | None = None,
    ) -> None:
        torch.save(compiled.module, path, pickle_protocol=pickle_protocol)

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        self.loads.append(path)
        if self.load_error is not None:
            raise self.load_error
        return torch.load(path, map_location=device, weights_only=False)


def register_fakes(
    monkeypatch: pytest.MonkeyPatch, frontend: TracedFrontend, artifact_format: TorchSaveFormat | None = None
) -> TorchSaveFormat:
    """Register ``frontend`` and a :class:`TorchSaveFormat` (one registry line each); returns the format.

    Until the test ends, the backend class gets :data:`CPU_TOOLKIT` and accepts the CPU device.
    """
    from aitune_trt_aot import TorchTensorRTAotBackend

    artifact_format = artifact_format or TorchSaveFormat()
    monkeypatch.setitem(FRONTENDS, frontend.name, frontend)
    monkeypatch.setitem(FORMATS, artifact_format.name, artifact_format)
    monkeypatch.setattr(TorchTensorRTAotBackend, "_toolkit", CPU_TOOLKIT)
    monkeypatch.setattr(TorchTensorRTAotBackend, "_devices", ["cuda", "cpu"])
    return artifact_format


def install_fakes(frontend: TracedFrontend) -> TorchSaveFormat:
    """:func:`register_fakes` for a whole process (a script's child process, not a test): nothing is undone."""
    from aitune_trt_aot import TorchTensorRTAotBackend

    artifact_format = TorchSaveFormat()
    FRONTENDS[frontend.name] = frontend
    FORMATS[artifact_format.name] = artifact_format
    TorchTensorRTAotBackend._toolkit = CPU_TOOLKIT
    TorchTensorRTAotBackend._devices = ["cuda", "cpu"]
    return artifact_format
