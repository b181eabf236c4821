"""CPU: which configurations use CUDA graphs, and the default ``"auto"``."""

from __future__ import annotations

import pytest

from aitune_trt_aot import ConfigError, TorchTensorRTAotBackendConfig
from aitune_trt_aot.plan import resolve_format, uses_cuda_graphs


def test_cuda_graphs_is_a_validated_choice() -> None:
    """True, False or "auto"; with the .pt2 format (its calls cannot be captured) True is refused at once."""
    assert TorchTensorRTAotBackendConfig().cuda_graphs == "auto"
    assert TorchTensorRTAotBackendConfig(cuda_graphs=True).describe() == "cuda_graphs=True"
    assert TorchTensorRTAotBackendConfig(cuda_graphs=False).describe() == "cuda_graphs=False"
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match=f"cuda_graphs must be True, False or 'auto', got {bad!r}"):
            TorchTensorRTAotBackendConfig(cuda_graphs=bad)
    with pytest.raises(ConfigError, match="cuda_graphs=True does not work with output_format='aot_inductor'"):
        TorchTensorRTAotBackendConfig(cuda_graphs=True, output_format="aot_inductor")


@pytest.mark.parametrize(
    ("ir", "output_format", "artifact_format"),
    [
        ("dynamo", "auto", "exported_program"),
        ("dynamo", "exported_program", "exported_program"),
        ("dynamo", "torchscript", "torchscript"),
        ("ts", "auto", "torchscript"),
    ],
)
def test_cuda_graphs_work_with_every_torch_tensorrt_runtime_format(
    ir: str, output_format: str, artifact_format: str
) -> None:
    """Torch-TensorRT 2.14 has one runtime, whose engine calls can be captured: graphs are used there by default."""
    for choice, expected in ((True, True), ("auto", True), (False, False)):
        config = TorchTensorRTAotBackendConfig(ir=ir, output_format=output_format, cuda_graphs=choice)
        resolved = resolve_format(config.ir, config.output_format)
        assert resolved == artifact_format
        assert uses_cuda_graphs(config, resolved) is expected


def test_auto_leaves_aot_inductor_packages_without_graphs() -> None:
    """The default config with output_format="aot_inductor" builds, and its calls run without CUDA graphs."""
    config = TorchTensorRTAotBackendConfig(output_format="aot_inductor")
    resolved = resolve_format(config.ir, config.output_format)
    assert resolved == "aot_inductor"
    assert config.cuda_graphs == "auto" and not uses_cuda_graphs(config, resolved)
