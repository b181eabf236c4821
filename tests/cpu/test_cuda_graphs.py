"""CPU: which configurations use CUDA graphs, and the default ``"auto"``."""

from __future__ import annotations

import pytest

from aitune_trt_aot import ConfigError, TorchTensorRTAotBackendConfig
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
