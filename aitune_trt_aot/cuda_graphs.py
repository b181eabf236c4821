"""Replay CUDA graphs instead of launching the engines call by call (``cuda_graphs=True``).

For small models the time per call is mostly host work: the runtime's Python or C++ bookkeeping and
the kernel launches. A CUDA graph captured once per input shape replays all of that GPU work with one
launch. Each distinct call signature (tensor shapes and dtypes) gets its own graph, captured on its
first call; graphs share one memory pool. Outputs are copied out of the graph's buffers, so a result
stays valid after the next call.

Engine failures: the runner wrapped here checks its calls (``engine_errors.CheckedEngines``). A warm-up or capture
call that TensorRT fails raises ``EngineCallError``, and the graph being captured is dropped, so a graph is only ever
recorded around calls that succeeded; a replay runs no TensorRT code.

Thread safety: a graph's input and output buffers are shared by every caller, so one lock serialises
capture and replay, and a call on another stream than the previous call's waits for that stream's work before
it overwrites those buffers (calls on one stream are ordered by the stream itself).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot.errors import ConfigError, EngineCallError

logger = logging.getLogger(__name__)

WARMUP_CALLS = 2  # eager calls on a side stream before capture (lazy initialisation must not be captured)
CUDA_GRAPHS = (True, False, "auto")  # the choices of the config's cuda_graphs and of load_pt2's


def check_cuda_graphs(value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of :data:`CUDA_GRAPHS`."""
    if value not in CUDA_GRAPHS or type(value) not in (bool, str):
        raise ConfigError(f"cuda_graphs must be True, False or 'auto', got {value!r}.")


def plain_tensors(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Whether a call passes only positional tensors of the plain class: its tensors are ``args``, no pytree walk."""
    return not kwargs and all(type(a) is torch.Tensor for a in args)


def cloned(outputs: Any) -> Any:
    """Copies of a replay's output tensors, in the same structure (the next replay overwrites the graph's own).

    A tensor, and a list, tuple or dict of tensors, are copied directly; anything else through pytree, whose
    ``tree_map_only`` took 25-35 us a call on the CPU machine against 2-5 us for a list of one tensor
    (``benchmarks/call_overhead.py``): about half a small model's whole replay on the GPU host, and ``load_pt2``'s
    runner returns such a list.
    """
    kind = type(outputs)
    if kind is torch.Tensor:
        return outputs.clone()
    if (kind is list or kind is tuple) and all(type(o) is torch.Tensor for o in outputs):
        return kind([o.clone() for o in outputs])
    if kind is dict and all(type(o) is torch.Tensor for o in outputs.values()):
        return {key: value.clone() for key, value in outputs.items()}
    return pytree.tree_map_only(torch.Tensor, torch.Tensor.clone, outputs)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    outputs: Any


class CudaGraphRunner:
    """Calls ``runner`` through one captured CUDA graph per input signature.

    Non-tensor arguments are part of the signature: a call with another value captures another graph.
    """

    def __init__(self, runner: Any, device: torch.device, max_graphs: int = 32, fall_back: bool = False) -> None:
        """Wrap ``runner``; at most ``max_graphs`` signatures are captured, further ones run without a graph.

        With ``fall_back``, a signature whose capture fails runs without a graph from then on (with a
        warning) instead of raising.
        """
        self.runner = runner
        self.device = device
        self.max_graphs = max_graphs
        self.fall_back = fall_back
        self._uncapturable: set[Any] = set()
        self._graphs: dict[Any, _Captured] = {}
        self._pool = torch.cuda.graph_pool_handle()
        self._lock = threading.Lock()
        self._last_stream: torch.cuda.Stream | None = None  # the stream the previous replay's copy-out ran on

    @property
    def graph_count(self) -> int:
        """How many signatures have a captured graph."""
        return len(self._graphs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Replay the graph for this call's signature, capturing it first when it is new."""
        if plain_tensors(args, kwargs):
            key: Any = tuple((a.shape, a.dtype) for a in args)  # the common case, without a pytree walk
            tensors = list(args)
            spec = None
        else:
            leaves, spec = pytree.tree_flatten((args, kwargs))
            tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
            key = (spec, tuple((leaf.shape, leaf.dtype) if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves))
        with self._lock:
            captured = self._graphs.get(key)
            if captured is None:
                if len(self._graphs) >= self.max_graphs or key in self._uncapturable:
                    return self.runner(*args, **kwargs)
                try:
                    captured = self._capture(args, kwargs, tensors, spec)
                except EngineCallError:
                    raise  # TensorRT failed the call: no graph is kept, and a later call at these shapes captures
                except Exception as error:
                    if not self.fall_back:
                        raise
                    logger.warning(
                        "Could not capture a CUDA graph for input shapes %s (%s: %s); these shapes run without one.",
                        [tuple(t.shape) for t in tensors],
                        type(error).__name__,
                        error,
                    )
                    self._uncapturable.add(key)
                    return self.runner(*args, **kwargs)
                self._graphs[key] = captured
            stream = torch.cuda.current_stream(self.device)
            if self._last_stream is not None and self._last_stream != stream:
                # Work on one stream runs in order; only a call from another stream must wait for the last copy-out.
                stream.wait_stream(self._last_stream)
            for static, given in zip(captured.inputs, tensors, strict=True):
                static.copy_(given)
            captured.graph.replay()
            outputs = cloned(captured.outputs)
            self._last_stream = stream
            return outputs

    def _capture(self, args: tuple, kwargs: dict, tensors: list[torch.Tensor], spec: Any) -> _Captured:
        static = [t.clone() for t in tensors]
        if spec is None:
            static_args, static_kwargs = tuple(static), {}
        else:
            replacements = iter(static)
            leaves = [
                next(replacements) if isinstance(leaf, torch.Tensor) else leaf
                for leaf in pytree.tree_leaves((args, kwargs))
            ]
            static_args, static_kwargs = pytree.tree_unflatten(leaves, spec)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.runner(*static_args, **static_kwargs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads may launch work (their own calls, eager code) while this one captures.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            outputs = self.runner(*static_args, **static_kwargs)
        logger.info("Captured a CUDA graph for input shapes %s", [tuple(t.shape) for t in tensors])
        return _Captured(graph=graph, inputs=static, outputs=outputs)
