"""CPU: which configurations use CUDA graphs, the default ``"auto"``, and how a replay's outputs are copied."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot import ConfigError, TorchTensorRTAotBackendConfig
from aitune_trt_aot.cuda_graphs import cloned
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.plan import resolve_format, uses_cuda_graphs


def test_cuda_graphs_is_a_validated_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """True, False or "auto"; True with a format whose calls cannot be captured is refused at once, naming others."""
    assert TorchTensorRTAotBackendConfig().cuda_graphs == "auto"
    assert TorchTensorRTAotBackendConfig(cuda_graphs=True).describe() == "cuda_graphs=True"
    assert TorchTensorRTAotBackendConfig(cuda_graphs=False).describe() == "cuda_graphs=False"
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match=f"cuda_graphs must be True, False or 'auto', got {bad!r}"):
            TorchTensorRTAotBackendConfig(cuda_graphs=bad)
    config = TorchTensorRTAotBackendConfig(cuda_graphs=True, output_format="aot_inductor")  # the .pt2 is captured
    assert config.describe() == "output_format=aot_inductor,cuda_graphs=True"
    monkeypatch.setattr(FORMATS["torchscript"], "cuda_graphs", False)  # a format whose calls cannot be captured
    with pytest.raises(ConfigError, match="cuda_graphs=True does not work with output_format='torchscript'") as error:
        TorchTensorRTAotBackendConfig(cuda_graphs=True, output_format="torchscript")
    assert "Use output_format='aot_inductor' or 'exported_program' with cuda_graphs" in str(error.value)


@pytest.mark.parametrize(
    ("ir", "output_format", "artifact_format"),
    [
        ("dynamo", "auto", "exported_program"),
        ("dynamo", "exported_program", "exported_program"),
        ("dynamo", "torchscript", "torchscript"),
        ("ts", "auto", "torchscript"),
        ("dynamo", "aot_inductor", "aot_inductor"),
    ],
)
def test_cuda_graphs_work_with_every_torch_tensorrt_runtime_format(
    ir: str, output_format: str, artifact_format: str
) -> None:
    """Torch-TensorRT 2.14 has one runtime, whose engine calls can be captured: graphs are used there by default.

    ``.pt2`` packages too: their AOTInductor runner is created single-threaded (``load_pt2``), whose calls can be
    captured; the thread-safe one queried a CUDA event on every call, which invalidated the capture.
    """
    for choice, expected in ((True, True), ("auto", True), (False, False)):
        config = TorchTensorRTAotBackendConfig(ir=ir, output_format=output_format, cuda_graphs=choice)
        resolved = resolve_format(config.ir, config.output_format)
        assert resolved == artifact_format
        assert uses_cuda_graphs(config, resolved) is expected


def test_replay_outputs_are_copied_in_their_structure() -> None:
    """A replay's outputs come back as copies (new storage, same values), in the structure the runner returned.

    Tensors and flat lists, tuples and dicts of tensors are copied directly; anything else (nested, a named tuple,
    a non-tensor leaf) goes through pytree, with non-tensors passed on as they are.
    """
    a, b = torch.arange(3.0), torch.ones(2)
    Pair = namedtuple("Pair", "first second")
    for outputs in (a, [a, b], (a, b), {"a": a, "b": b}, [], Pair(a, b), [a, [b]], (a, 2), {"a": (a,)}):
        copies = cloned(outputs)
        assert type(copies) is type(outputs)
        original_leaves, original_spec = pytree.tree_flatten(outputs)
        copied_leaves, copied_spec = pytree.tree_flatten(copies)
        assert copied_spec == original_spec
        for original, copy in zip(original_leaves, copied_leaves, strict=True):
            if isinstance(original, torch.Tensor):
                assert copy is not original and copy.data_ptr() != original.data_ptr()
                assert torch.equal(copy, original)
            else:
                assert copy is original
