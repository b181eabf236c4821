"""CPU: which configurations may ask for CUDA graphs."""

from __future__ import annotations

import pytest

from aitune_trt_aot import ConfigError, TorchTensorRTAotBackendConfig


def test_cuda_graphs_is_a_validated_flag() -> None:
    """A non-bool is refused; with the .pt2 format (its calls cannot be captured) it is refused at once."""
    assert TorchTensorRTAotBackendConfig(cuda_graphs=True).describe() == "cuda_graphs=True"
    with pytest.raises(ConfigError, match="cuda_graphs must be True or False, got 'yes'"):
        TorchTensorRTAotBackendConfig(cuda_graphs="yes")
    with pytest.raises(ConfigError, match="cuda_graphs=True does not work with output_format='aot_inductor'"):
        TorchTensorRTAotBackendConfig(cuda_graphs=True, output_format="aot_inductor")


@pytest.mark.parametrize(
    ("ir", "output_format"),
    [("dynamo", "auto"), ("dynamo", "exported_program"), ("dynamo", "torchscript"), ("ts", "auto")],
)
def test_cuda_graphs_work_with_every_torch_tensorrt_runtime_format(ir: str, output_format: str) -> None:
    """Torch-TensorRT 2.14 has one runtime, whose engine calls can be captured: graphs are allowed there."""
    config = TorchTensorRTAotBackendConfig(ir=ir, output_format=output_format, cuda_graphs=True)
    assert config.cuda_graphs
