"""GPU: a batch range AITune raises beyond what the build can do is built as far as it can be verified (issue 29).

``OneBackendStrategy`` by default raises a graph's batch range to the batch size at which eager PyTorch had its best
throughput (its find-max-batch-size step): for this small token encoder, 65536 in fp32 and 524288 in fp16 on the
GPU host. The build then keeps the largest range that ``torch.export`` proves and the engines reproduce eager on.
Performance validation is off (it may keep eager, which would prove nothing about this backend); the range raising
is AITune's default. Marked ``serial``: eager profiling at huge batches wants the GPU to itself.
"""

from __future__ import annotations

import copy

import aitune.torch as ait
import pytest
import torch
from aitune.torch.module_registry import MODULE_REGISTRY

from aitune_trt_aot import InputShapeError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from tests.support import tolerances
from tests.support.gpu import CallCounter, the_backend

pytestmark = pytest.mark.serial

TOKENS, VOCAB = 16, 1000


class TokenEncoder(torch.nn.Module):
    """Embedding(1000, 64), one TransformerEncoderLayer, mean over tokens, Linear: int64 ids of length 16."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 64)
        self.layer = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.embed(input_ids)).mean(dim=1))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_raised_batch_range_builds_the_largest_range_it_can_verify(precision: str) -> None:
    MODULE_REGISTRY.clear()
    torch.manual_seed(0)
    model = TokenEncoder().cuda().eval()
    reference = copy.deepcopy(model)
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(precision=precision))
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_performance_validation(False)
    tuned = ait.Module(model, f"token-encoder-{precision}", strategy=strategy)
    data = [torch.randint(0, VOCAB, (TOKENS,), device="cuda") for _ in range(4)]
    ait.tune(tuned, data, batch_sizes=[1, 8], device="cuda", ignore_failing_modules=False)
    backend = the_backend(tuned)
    (spec,) = backend._entry.shape_guard.ranges
    top = spec.max_shape[0]
    steps = {
        r["step"].name.lower(): {k: v for k, v in r.items() if k in ("built_ranges", "seconds")}
        for r in backend._build_results
    }
    print(f"\n[token encoder {precision}] built range {spec.describe()}; checked {backend.checked_shapes}; {steps}")
    assert top >= 8

    counter = CallCounter(backend)
    errors = {}
    try:
        for batch in sorted({1, 3, 8, min(top, 64), top}):
            ids = torch.randint(0, VOCAB, (batch, TOKENS), device="cuda")
            with torch.no_grad():
                actual, expected = tuned(ids), reference(ids)
            errors[batch] = float((actual.float() - expected.float()).abs().max())
    finally:
        counter.backend._runner = counter.runner
    print(f"[token encoder {precision}] errors vs eager fp32 by batch: {errors}")
    assert counter.calls == len(errors), "every call reached this backend"
    tolerance = tolerances.BY_PRECISION[precision] * max(1.0, float(reference(ids).abs().max()))
    assert max(errors.values()) <= tolerance
    with pytest.raises(InputShapeError, match=f"outside the built range 1..{top}"):
        backend.infer(torch.randint(0, VOCAB, (top + 1, TOKENS), device="cuda"))
