"""CPU: which configurations may ask for CUDA graphs, and the format they get."""

from __future__ import annotations

import pytest

from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.frontends import get_frontend


def test_cuda_graphs_is_a_validated_flag() -> None:
    """A non-bool is refused; with the .pt2 format (C++ runtime) it is refused at once."""
    assert TorchTensorRTAotBackendConfig(cuda_graphs=True).describe() == "cuda_graphs=True"
    with pytest.raises(ValueError, match="cuda_graphs must be True or False, got 'yes'"):
        TorchTensorRTAotBackendConfig(cuda_graphs="yes")
    with pytest.raises(ValueError, match="cuda_graphs=True does not work with output_format='aot_inductor'"):
        TorchTensorRTAotBackendConfig(cuda_graphs=True, output_format="aot_inductor")


def test_cuda_graphs_pick_the_python_runtime_format() -> None:
    """Dynamo saves the Python-runtime module when graphs are on; ts (C++ runtime only) is refused."""
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(cuda_graphs=True))
    assert backend._artifact_format(get_frontend("dynamo")).name == "pickled_module"
    ts = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir="ts", cuda_graphs=True))
    with pytest.raises(ValueError, match="cuda_graphs=True needs engines in Torch-TensorRT's Python runtime"):
        ts._artifact_format(get_frontend("ts"))
