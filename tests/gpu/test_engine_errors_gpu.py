"""GPU: an engine call that TensorRT fails raises ``EngineCallError``; it never returns unwritten outputs.

The failure was seen with kernel compiles failing while other processes held the GPU (issue 29). These tests take
nearly all of the GPU's free memory, then call the tuned model at batch sizes no call has used yet, so that
TensorRT-RTX must compile kernels for them with almost no memory. Measured on an H100 (2026-12-07) that did not make
an engine call fail: every call ran. So the first test asserts what must hold either way (an error or eager's
result, never a silent wrong one), and the second, which needs a failure, is an xfail until a forcing method
reproduces one. Marked ``serial``: they must have the GPU to themselves.
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


def _starved_calls(tuned, reference, case: str, batches: tuple[int, ...]) -> tuple[EngineCallError | None, dict]:
    """Call ``tuned`` at ``batches`` (never called before) with the GPU's memory taken; stop at an EngineCallError.

    Returns that error (None if none came) and, per batch, what the call gave: its largest error against eager
    (computed before the memory was taken) or the exception's type and message.
    """
    expected = {}
    for batch in batches:
        args, kwargs = inputs_for(case, batch)
        with torch.no_grad():
            expected[batch] = (args, kwargs, reference(*args, **kwargs))
    seen: dict = {}
    with gpu_memory_taken() as free:
        seen["bytes left free"] = free
        for batch, (args, kwargs, eager) in expected.items():
            try:
                with torch.no_grad():
                    actual = tuned(*args, **kwargs)
                seen[batch] = float((actual - eager).abs().max())
            except EngineCallError as error:
                seen[batch] = "EngineCallError"
                return error, seen
            except Exception as error:  # reported by the caller: what else a starved GPU gave
                seen[batch] = f"{type(error).__name__}: {str(error)[:200]}"
    return None, seen


@pytest.mark.parametrize("cuda_graphs", ["auto", False])
def test_calls_on_a_starved_gpu_raise_or_match_eager(cuda_graphs) -> None:
    """With the GPU's memory taken, a first call at a new shape either raises EngineCallError or matches eager."""
    case = "encoder"
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=cuda_graphs)))
    counter = CallCounter(the_backend(tuned))
    try:
        failure, seen = _starved_calls(tuned, reference, case, (11, 13, 14, 15))
    finally:
        counter.backend._runner = counter.runner
    print(f"\n[starved GPU, cuda_graphs={cuda_graphs}] {seen}; {failure}")
    assert counter.calls >= 1  # the calls reached this backend, not AITune's eager fallback
    for batch, outcome in seen.items():
        if isinstance(batch, int) and isinstance(outcome, float):
            assert outcome <= tolerances.FP32, f"batch {batch}: a wrong result without an error ({outcome})"


@pytest.mark.xfail(
    strict=False,
    reason="no forcing method reproduces a failed engine call yet: with all but 6-8 MB of an H100's memory taken, "
    "first calls at new shapes still ran and matched eager (2026-12-07); docs/known-issues.md",
)
@pytest.mark.parametrize("cuda_graphs", ["auto", False])
def test_an_engine_call_tensorrt_fails_raises_and_records_no_graph(cuda_graphs) -> None:
    case = "encoder"
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=cuda_graphs)))
    backend = the_backend(tuned)
    graphs = backend.runner.graph_count if isinstance(backend.runner, CudaGraphRunner) else None
    counter = CallCounter(backend)
    try:
        failure, seen = _starved_calls(tuned, reference, case, (11, 13, 14, 15))
    finally:
        counter.backend._runner = counter.runner
    print(f"\n[engine failure, cuda_graphs={cuda_graphs}] {failure}; calls: {seen}")
    assert failure is not None, f"no engine call failed with the GPU's memory taken (not reproduced): {seen}"
    batch = max(b for b in seen if isinstance(b, int))
    assert "TensorRT failed while running the engines of" in str(failure) and f"({batch}, 16, 64)" in str(failure)
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


@pytest.mark.xfail(strict=False, reason="written 2026-12-07 after the device time was spent: not yet run on the GPU")
def test_a_first_call_captured_into_a_cuda_graph_fails_in_tensorrt_and_raises() -> None:
    """Another way to force a failure: a first call at a new shape made inside a CUDA-graph capture.

    With ``kernel_specialization="eager"`` TensorRT-RTX compiles that shape's kernels inside the call, which a stream
    being captured does not allow; the error TensorRT logs must end the call with ``EngineCallError``.
    """
    config = TorchTensorRTAotBackendConfig(cuda_graphs=False, kernel_specialization="eager")
    tuned, _ = tune_case("encoder", TorchTensorRTAotBackend(config))
    backend = the_backend(tuned)
    args, kwargs = inputs_for("encoder", 13)  # never called: its kernels are not compiled yet
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(EngineCallError) as raised, torch.no_grad(), torch.cuda.graph(graph):
        backend.runner(*args, **kwargs)
    print(f"\n[capture around a first call] {raised.value}")
