"""CPU: counting how much of a compiled graph runs in TensorRT (what the backend reports and refuses)."""

from __future__ import annotations

import torch
from torch import nn

from aitune_trt_aot.compiled import CompiledModel, Coverage, count_ops, graph_coverage, script_coverage


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


class Inner(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x) * 2


class TRTModule(nn.Module):
    """Stands for an engine of Torch-TensorRT's FX frontend (counted by class name)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()
        self.engine = TRTModule()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pair = torch.chunk(self.engine(x), 2, dim=1)
        return self.inner(pair[0]), pair[1].relu()


class KeepInner(torch.fx.Tracer):
    """Keeps ``inner`` and the engine as submodule calls (a partitioned graph has PyTorch-run submodules)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name in ("inner", "engine") or super().is_leaf_module(module, qualified_name)


def _partitioned() -> torch.fx.GraphModule:
    root = Outer()
    module = torch.fx.GraphModule(root, KeepInner().trace(root))
    module.inner = torch.fx.symbolic_trace(Inner())  # the PyTorch-run part is itself a graph
    return module


def test_count_ops_descends_into_graph_submodules_and_skips_indexing() -> None:
    """Chunk and relu at the top, sigmoid and mul inside the submodule; tuple indexing is not an operation."""
    module = _partitioned()
    assert any(n.op == "call_function" and n.target.__name__ == "getitem" for n in module.graph.nodes)
    assert count_ops(module) == 4
    assert count_ops(torch.fx.symbolic_trace(Inner())) == 2


def test_fx_frontend_engines_count_and_unknown_source_gives_unknown_tensorrt_ops() -> None:
    """TRTModule engines are engines; with no source op count, the ops in TensorRT are unknown, not 0."""
    coverage = graph_coverage(_partitioned(), None)
    assert coverage == Coverage(engines=1, tensorrt_ops=None, pytorch_ops=4)
    assert coverage.describe() == "1 TensorRT engine, 4 in PyTorch"
    assert graph_coverage(_partitioned(), 3).tensorrt_ops == 0, "never negative"


def test_script_coverage_counts_aten_ops_of_a_scripted_module() -> None:
    """A TorchScript module without engines: no engine, ops in TensorRT unknown, every aten op in PyTorch."""
    scripted = torch.jit.script(Inner())
    coverage = script_coverage(scripted)
    assert coverage == Coverage(engines=0, tensorrt_ops=None, pytorch_ops=2)
    assert coverage.to_dict() == {"engines": 0, "tensorrt_ops": None, "pytorch_ops": 2, "layers": None}
