"""Calling a tuned module's engines without AITune's per-call layer: :func:`direct_call`.

Every call of an ``ait.Module`` passes through AITune's own layer before it reaches the backend: AITune swaps the
wrapped module's ``forward`` out and back, binds the arguments to the forward signature, builds the call's
metadata to pick the graph, and wraps the backend call in an NVTX range. On the GPU host that layer cost 0.10-0.17
ms a call, more than a small MLP's whole engine call in its CUDA graph (docs/benchmark.md).

``direct_call(model)`` returns a callable that goes to this backend straight away: its shape check, then the
engines (in their CUDA graphs where the config uses them). It serves an ``ait.Module`` that AITune tuned, or
loaded, into exactly one graph served by this backend, and refuses anything else. It leaves out AITune's choice
of graph per call (a module with several graphs needs it) and its eager passthrough. The backend is safe to call
from several threads (``backend.infer`` from 4 threads at once: ``tests/gpu/test_threads_gpu.py``), so unlike the
``ait.Module`` itself (:func:`aitune_trt_aot.serialize_calls`) the direct callable needs no lock.
"""

from __future__ import annotations

from typing import Any

from aitune.torch.module.wrapper_module import Module as AITuneModule

from aitune_trt_aot.backend import TorchTensorRTAotBackend
from aitune_trt_aot.errors import DirectCallError
from aitune_trt_aot.tuned import tuned_graphs, tuned_module


class DirectCall:
    """Runs one tuned graph's engines through this backend, skipping AITune's per-call layer.

    Attributes:
        backend: The backend that serves the module's one graph.

    """

    def __init__(self, backend: TorchTensorRTAotBackend, signature: Any) -> None:
        """Use :func:`direct_call`. ``signature``: AITune's forward signature of the module, to bind keywords."""
        self.backend = backend
        self._signature = signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the engines with the arguments the ``ait.Module`` takes; same results.

        A call the engines were not built for raises the backend's ``InputShapeError``. Through the ``ait.Module``
        AITune's own check may refuse some of those first (an unseen plain value: its ``RuntimeError``).
        """
        if kwargs and self._signature is not None:
            # AITune hands the backend the call bound to the forward signature (positional where possible).
            bound = self._signature.normalize(args, kwargs)
            args, kwargs = bound.args, bound.kwargs
        return self.backend.infer(*args, **kwargs)

    def __repr__(self) -> str:
        """The backend it calls."""
        return f"DirectCall({self.backend.describe()})"


def direct_call(model: Any) -> DirectCall:
    """A callable that runs a tuned ``ait.Module``'s engines without AITune's per-call layer.

    Example:
        >>> ait.tune(model, data, batch_sizes=[1, 32], device="cuda")  # doctest: +SKIP
        >>> fast = aitune_trt_aot.direct_call(model)  # doctest: +SKIP
        >>> fast(x)  # the same result as model(x)  # doctest: +SKIP

    Args:
        model: The ``ait.Module`` after ``ait.tune`` or ``ait.load``, tuned into one graph served by this backend.

    Raises:
        DirectCallError: ``model`` is not an ``ait.Module``, is not tuned, has several graphs, or AITune chose
            another backend for it (for example eager, when this backend failed or was slower).

    """
    if not isinstance(model, AITuneModule):
        raise DirectCallError(
            f"direct_call takes the ait.Module itself, got {type(model).__name__}. For a model holding ait.Modules, "
            "call direct_call on each of them and use the results in place of their calls."
        )
    graphs = tuned_graphs(model, DirectCallError)
    if len(graphs) != 1:
        listed = "; ".join(f"{where}: {backend.describe()}" for where, backend in graphs)
        raise DirectCallError(
            f"AITune tuned {model.name!r} into {len(graphs)} graphs ({listed}); direct_call serves a module with one "
            "graph, because choosing the graph per call is AITune's work. Call the ait.Module itself."
        )
    ((where, backend),) = graphs
    if not isinstance(backend, TorchTensorRTAotBackend):
        raise DirectCallError(
            f"{where} is served by {backend.describe()}, not by aitune_trt_aot's TorchTensorRTAotBackend (AITune keeps "
            "eager when a backend fails or is not faster); call the ait.Module itself, or tune it with "
            "OneBackendStrategy and ignore_failing_modules=False to see why."
        )
    return DirectCall(backend, getattr(tuned_module(model), "_forward_signature", None))
