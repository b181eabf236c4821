"""Calling an AITune-tuned model from several threads: :func:`serialize_calls`.

AITune 0.6's ``ait.Module`` is not safe to call from several threads at once. Around each call it swaps the
wrapped module's ``forward`` back to the original and then to its proxy again (``wrapper_module._forward``);
a thread that enters meanwhile runs the ORIGINAL forward, eagerly, without the tuned backend. Measured on the
CPU with AITune's eager backend: 4 threads x 300 calls, only 382 of 1200 calls reached the backend
(``tests/cpu/test_threads.py``). With this backend the original module's weights are on the ``meta`` device
after tuning (AITune's ``DEFAULT_DEVICE_AFTER_TUNING``), so such a call fails with "Tensor on device meta is
not on the expected device cuda:0" (measured on the GPU host) instead of returning a result.

The backend below AITune is thread-safe (Torch-TensorRT's engine calls lock their execution context; the
CUDA-graph runner locks its shared buffers), so one lock around the AITune layer is enough.
"""

from __future__ import annotations

import threading
from typing import Any

from torch import nn


class SerializedCalls(nn.Module):
    """Calls ``model`` under one lock, so any number of threads may call it; one call runs at a time.

    Attributes:
        model: The model (an ``ait.Module`` or a model holding ones), called as is.

    """

    def __init__(self, model: nn.Module) -> None:
        """Wrap ``model``; use :func:`serialize_calls`."""
        super().__init__()
        self.model = model
        self._lock = threading.Lock()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the model while holding the lock."""
        with self._lock:
            return self.model(*args, **kwargs)


def serialize_calls(model: nn.Module) -> SerializedCalls:
    """Make a tuned model safe to call from several threads (see the module docstring for why it is needed).

    Example:
        >>> safe = aitune_trt_aot.serialize_calls(tuned_model)  # doctest: +SKIP
        >>> pool.map(safe, batches)  # doctest: +SKIP

    """
    return SerializedCalls(model)
