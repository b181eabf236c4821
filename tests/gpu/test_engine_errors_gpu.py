"""GPU: an engine call that TensorRT fails raises ``EngineCallError``; it never returns unwritten outputs.

The failure is forced the way it was seen (issue 29: kernel compiles failing while other processes held the GPU):
the test takes nearly all of the GPU's free memory, then calls the tuned model at batch sizes no call has used
yet, so that TensorRT-RTX must compile kernels for them with no memory to do it in. Marked ``serial``: it must have
the GPU to itself.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest
import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from aitune_trt_aot.errors import EngineCallError
from tests.support import tolerances
from tests.support.gpu import CallCounter, inputs_for, the_backend, tune_case

pytestmark = pytest.mark.serial

BLOCK = 2 << 20


@contextlib.contextmanager
def gpu_memory_taken(leave: int = 0) -> Iterator[int]:
    """Hold all but about ``leave`` bytes of the GPU's free memory; yields what is left free."""
    held = []
    free, _ = torch.cuda.mem_get_info()
    with contextlib.suppress(torch.OutOfMemoryError):
        held.append(torch.empty(max(0, free - leave - 64 * BLOCK), dtype=torch.uint8, device="cuda"))
        while torch.cuda.mem_get_info()[0] > leave + BLOCK:
            held.append(torch.empty(BLOCK, dtype=torch.uint8, device="cuda"))
    try:
        yield torch.cuda.mem_get_info()[0]
    finally:
        del held
        gc.collect()
        torch.cuda.empty_cache()


@pytest.mark.parametrize("cuda_graphs", ["auto", False])
def test_an_engine_call_tensorrt_fails_raises_and_records_no_graph(cuda_graphs) -> None:
    case = "encoder"
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=cuda_graphs)))
    backend = the_backend(tuned)
    graphs = backend.runner.graph_count if isinstance(backend.runner, CudaGraphRunner) else None
    counter = CallCounter(backend)
    failure = None
    batch = None
    seen = []
    try:
        with gpu_memory_taken() as free:
            for batch in (11, 13, 14, 15):  # never called before: TensorRT-RTX compiles kernels for each
                args, kwargs = inputs_for(case, batch)
                try:
                    with torch.no_grad():
                        tuned(*args, **kwargs)
                    seen.append((batch, "returned"))
                except EngineCallError as error:
                    failure = error
                    break
                except Exception as error:  # noqa: BLE001 - reported below: what else a starved GPU gave
                    seen.append((batch, f"{type(error).__name__}: {str(error)[:200]}"))
    finally:
        counter.backend._runner = counter.runner
    print(f"\n[engine failure, cuda_graphs={cuda_graphs}, {free} bytes left free] {failure}; other calls: {seen}")
    assert failure is not None, f"no engine call failed with the GPU's memory taken (not reproduced): {seen}"
    assert counter.calls >= 1  # the calls reached this backend, not AITune's eager fallback
    message = str(failure)
    assert "TensorRT failed while running the engines of" in message and f"({batch}, 16, 64)" in message
    if graphs is not None:
        assert backend.runner.graph_count == graphs, "a CUDA graph was kept around a failed call"

    # With memory back, the same shape runs (and, under CUDA graphs, captures) and matches eager.
    args, kwargs = inputs_for(case, batch)
    with torch.no_grad():
        actual, expected = tuned(*args, **kwargs), reference(*args, **kwargs)
    error = float((actual - expected).abs().max())
    print(f"[after the failure, batch {batch}] error vs eager {error}")
    assert error <= tolerances.FP32
    if graphs is not None:
        assert backend.runner.graph_count == graphs + 1
