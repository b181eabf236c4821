"""AITune strategies for tests, and AITune modules tuned on the CPU with AITune's eager backend (no GPU needed)."""

from __future__ import annotations

import aitune.torch as ait
import torch
from aitune.torch.backend import TorchEagerBackend
from aitune.torch.backend.backend import Backend


def strategy_for(backend: Backend) -> ait.OneBackendStrategy:
    """One-backend strategy that keeps the tuned batch range as given and never swaps in eager."""
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)
    strategy.enable_performance_validation(False)
    return strategy


def eager_module(module: torch.nn.Module, name: str) -> ait.Module:
    """``module`` in an AITune module whose one backend is AITune's eager backend (:func:`strategy_for`)."""
    return ait.Module(module, name, strategy=strategy_for(TorchEagerBackend()))


def tuned_eager_module(module: torch.nn.Module, name: str) -> ait.Module:
    """:func:`eager_module`, tuned on the CPU for inputs of 4 features at batch sizes 1 and 2: a real checkpoint."""
    wrapped = eager_module(module, name)
    ait.tune(wrapped, [torch.randn(4), torch.randn(4)], batch_sizes=[1, 2], device="cpu")
    return wrapped


def one_and_two_graph_modules(prefix: str) -> tuple[ait.Module, ait.Module]:
    """Two eager-backed modules tuned on the CPU in one call: the first records one graph, the second two."""
    one_graph = eager_module(torch.nn.Linear(4, 4), f"{prefix}-one-graph")
    two_graphs = eager_module(torch.nn.Linear(4, 4), f"{prefix}-two-graphs")

    def call(x: torch.Tensor) -> torch.Tensor:
        one_graph(x)
        two_graphs(x)
        return two_graphs(x.unsqueeze(1))  # another input rank: AITune records a second graph

    ait.tune(call, [torch.randn(4), torch.randn(4)], batch_sizes=[1, 2], device="cpu")
    return one_graph, two_graphs
