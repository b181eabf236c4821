"""CPU: ``direct_call`` refuses, with what to do, anything but one ait.Module served by this backend in one graph.

Its call path (this backend's engines without AITune's per-call layer) is shown on the GPU:
``tests/gpu/test_compile_gpu.py::test_direct_call_matches_the_module_and_skips_aitune``.
"""

from __future__ import annotations

from pathlib import Path

import aitune.torch as ait
import pytest
import torch
from aitune.torch.module_registry import MODULE_REGISTRY

import aitune_trt_aot
from aitune_trt_aot import DirectCallError, direct_call
from tests.support.tuning import eager_module, one_and_two_graph_modules, tuned_eager_module


def test_direct_call_takes_only_the_ait_module_itself() -> None:
    """A plain module, or a model holding an ait.Module, is refused: its own forward would be skipped."""
    with pytest.raises(DirectCallError, match="takes the ait.Module itself, got Linear"):
        direct_call(torch.nn.Linear(2, 2))
    MODULE_REGISTRY.clear()
    inner = eager_module(torch.nn.Linear(4, 4), "direct-inner")
    with pytest.raises(DirectCallError, match="takes the ait.Module itself, got Sequential"):
        direct_call(torch.nn.Sequential(inner))
    with pytest.raises(DirectCallError, match=r"'direct-inner' is not tuned .*run ait.tune or ait.load first"):
        direct_call(inner)
    MODULE_REGISTRY.clear()


def test_direct_call_refuses_several_graphs_and_other_backends() -> None:
    """Two recorded graphs need AITune's choice per call; an eager-served module has no engines to call."""
    MODULE_REGISTRY.clear()
    one_graph, two_graphs = one_and_two_graph_modules("direct")
    with pytest.raises(DirectCallError, match=r"into 2 graphs .*Call the ait.Module itself"):
        direct_call(two_graphs)
    with pytest.raises(DirectCallError, match=r"served by TorchEagerBackend\(\), not by aitune_trt_aot"):
        direct_call(one_graph)
    MODULE_REGISTRY.clear()


def test_direct_call_finds_the_graph_of_a_loaded_module(tmp_path: Path) -> None:
    """After ait.load the module's one graph and its backend are found as after ait.tune (here: AITune's eager)."""
    MODULE_REGISTRY.clear()
    target = tmp_path / "model.ait"
    aitune_trt_aot.save(tuned_eager_module(torch.nn.Linear(4, 4), "direct-saved"), target)
    MODULE_REGISTRY.clear()
    loaded = ait.load(eager_module(torch.nn.Linear(4, 4), "direct-saved"), target)
    with pytest.raises(DirectCallError, match=r"'direct-saved' graph 0 is served by TorchEagerBackend\(\)"):
        direct_call(loaded)
    MODULE_REGISTRY.clear()
