"""GPU: an engine call that TensorRT fails raises ``EngineCallError``; it never returns unwritten outputs.

The failure was seen with kernel compiles failing while other processes held the GPU (issue 29). This test starves
the GPU: nearly all free memory taken, then calls at batch sizes no call has used yet, so that TensorRT-RTX must
compile kernels for them with almost no memory left. On an H100 and an H200 (2026-12-07) that did not make a call
fail: every call ran and matched eager. So the test asserts what must hold either way: an error or eager's result,
never a silent wrong one. Making a first call at a new shape inside a CUDA-graph capture did not make TensorRT fail
either (docs/known-issues.md, "Engine calls TensorRT fails"), and a process capped in address space got CUDA's own
out-of-memory errors first; capping its heap alone is the next try (below). The detection itself is tested on the CPU
(tests/cpu/test_engine_errors.py). Marked ``serial``: it must have the GPU to itself.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import pytest
import torch

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
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


def test_kernel_compile_without_host_memory_raises_or_matches(tmp_path) -> None:
    """A fresh process with its memory capped calls at new shapes: every call raises or matches eager, never lies.

    TensorRT-RTX compiles kernels on the first call at each shape (kernel_specialization="eager", no CUDA graphs,
    no warm-up): with the process capped just above what it uses (``tests/scripts/call_under_rlimit.py``), that
    compile may not get the memory it needs. Tried with the heap capped (``RLIMIT_DATA``) at growing margins, then
    the address space (``RLIMIT_AS``), until a call raises ``EngineCallError``. If none does, the test is an xfail
    that names what the calls gave: the forced TensorRT failure is then not shown (docs/known-issues.md, "Engine
    calls TensorRT fails"). On an H100 (2026-12-07) the address-space cap made the calls raise CUDA's own
    out-of-memory error (no wrong result, and no TensorRT failure either); the heap cap is not yet run.
    """
    from aitune_trt_aot import save
    from tests.support.gpu import save_expected
    from tests.support.processes import json_tail, run_python

    case = "encoder"
    config = TorchTensorRTAotBackendConfig(cuda_graphs=False, kernel_specialization="eager", warm_up=False)
    tuned, reference = tune_case(case, TorchTensorRTAotBackend(config))
    save_expected(tuned, reference, case, tmp_path / "expected.pt", batches=(11, 13, 14, 15))
    save(tuned, tmp_path / "model.ait")
    reports = []
    for limit, margin_mb in (("tmpdir", 0), ("data", 4), ("data", 32), ("data", 256), ("as", 64)):
        result = run_python(
            "-m", "tests.scripts.call_under_rlimit", case, str(tmp_path / "model.ait"), str(tmp_path / "expected.pt"),
            limit, str(margin_mb), timeout=300,
        )  # fmt: skip
        report = json_tail(result, f"calls with {limit} capped at +{margin_mb} MB")
        reports.append(report)
        print(f"\n[{limit} +{margin_mb} MB] {report['outcomes']}")
        for batch, outcome in report["outcomes"].items():
            if isinstance(outcome, float):
                assert outcome <= tolerances.FP32, f"batch {batch}: a wrong result without an error ({outcome})"
        raised = [o for o in report["outcomes"].values() if isinstance(o, str) and o.startswith("EngineCallError")]
        if raised:
            assert "TensorRT failed while running the engines" in raised[0] and "input shapes [(" in raised[0]
            return
    pytest.xfail(f"no cap made TensorRT fail an engine call (each call raised or matched eager): {reports}")
