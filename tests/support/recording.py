"""AITune's recording objects made on the CPU: a graph spec from calls, and a sample store holding them."""

from __future__ import annotations

from pathlib import Path

import torch
from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.graph_spec import GraphSpec
from aitune.torch.module.sample_metadata import SampleMetadata
from aitune.torch.module.sample_store import SampleStore
from torch import nn
from torch.utils._pytree import tree_leaves

Call = tuple[tuple, dict]


def record(module: nn.Module, calls: list[Call]) -> GraphSpec:
    """A graph spec built the way AITune's recording module builds it, from calls at different batch sizes."""
    signature = ForwardSignature.from_callable(module.forward)
    spec = None
    for args, kwargs in calls:
        batch = tree_leaves(args)[0].shape[0]
        inputs = SampleMetadata.from_inputs(signature.normalize(args, kwargs).arguments, batch_size=batch)
        with torch.no_grad():
            outputs = SampleMetadata.from_outputs(module(*args, **kwargs), batch_size=batch)
        if spec is None:
            spec = GraphSpec("0", inputs, outputs, signature)
        else:
            spec.update_shapes_seen(inputs, outputs)
    assert spec is not None
    return spec


def sample_store(calls: list[Call], root: Path) -> SampleStore:
    """AITune's disk-backed store of recorded calls, holding ``calls`` (under ``root``)."""
    return SampleStore.from_samples(calls, root, "samples")


def two_inputs_call(batch: int, scale: float = 0.5) -> Call:
    """One call of ``tests.support.models.TwoInputs`` at a batch size (tensors x, y, bias and the float scale)."""
    return (torch.randn(batch, 32), torch.randn(batch, 16)), {"bias": torch.randn(batch, 64), "scale": scale}
