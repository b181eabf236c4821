"""CPU: counting how much of a compiled graph runs in TensorRT (what the backend reports and refuses)."""

from __future__ import annotations

import torch
from torch import nn

from aitune_trt_aot.compiled import CompiledModel, Coverage, count_ops, graph_coverage


class TorchTensorRTModule(nn.Module):
    """Stands for an engine: the coverage counts modules of this class name as TensorRT engines."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pass through."""
        return x


class EngineLeafTracer(torch.fx.Tracer):
    """Keeps engine modules as calls, as Torch-TensorRT's partitioned graphs have them."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        """Engines are leaves."""
        return isinstance(module, TorchTensorRTModule) or super().is_leaf_module(module, qualified_name)


class Partly(nn.Module):
    """An engine, then two operations left to PyTorch."""

    def __init__(self) -> None:
        """Build the parts."""
        super().__init__()
        self.engine = TorchTensorRTModule()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the engine, then PyTorch."""
        return torch.relu(self.engine(x)) + 1


def test_coverage_counts_engines_and_pytorch_ops() -> None:
    """Engines are counted by class; ops left in the graph are PyTorch's; the rest of the source ran in TensorRT."""
    compiled = torch.fx.GraphModule(Partly(), EngineLeafTracer().trace(Partly()))
    assert count_ops(compiled) == 2
    coverage = graph_coverage(compiled, source_ops=9)
    assert coverage == Coverage(engines=1, tensorrt_ops=7, pytorch_ops=2)
    assert coverage.describe() == "1 TensorRT engine, 7 ops in TensorRT, 2 in PyTorch"
    assert Coverage(0, None, 3).describe() == "0 TensorRT engines, 3 in PyTorch"
    assert Coverage(**coverage.to_dict()) == coverage


def test_dynamic_shapes_become_positional_for_a_renamed_graph() -> None:
    """Name-keyed dynamic shapes turn into a tuple in call order (the compiled graph renames its inputs)."""
    batch = torch.export.Dim("batch", min=1, max=16)
    compiled = CompiledModel(module=None, sample=((), {}), coverage=Coverage(1, 1, 0), dynamic_shapes={"x": {0: batch}})
    assert compiled.positional_dynamic_shapes() == ({0: batch},)
    assert CompiledModel(None, ((), {}), Coverage(1, 1, 0)).positional_dynamic_shapes() is None
