"""Finding the graphs AITune tuned inside a model, and the backend that serves each (``save_pt2``, ``direct_call``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aitune.torch.backend.backend import Backend
from aitune.torch.module.wrapper_module import Module as AITuneModule
from torch import nn

from aitune_trt_aot.errors import AitrtAotError


def aitune_modules(module: Any) -> Iterator[AITuneModule]:
    """The AITune modules in ``module``'s tree, itself included.

    ``nn.Module.modules()`` cannot find them: an AITune module is a proxy, and walking through it reaches the
    module it wraps instead. So the stored children are walked here.
    """
    if isinstance(module, AITuneModule):
        yield module
    elif isinstance(module, nn.Module):
        for child in module._modules.values():
            if child is not None:
                yield from aitune_modules(child)


def tuned_graphs(target: Any, error: type[AitrtAotError]) -> list[tuple[str, Backend]]:
    """``(description, backend)`` for every graph AITune tuned inside ``target``; ``error`` for an untuned module."""
    graphs = []
    for wrapper in dict.fromkeys(aitune_modules(target)):
        backends = getattr(tuned_module(wrapper), "backends", None)
        if not backends:
            raise error(
                f"AITune module {wrapper.name!r} is not tuned (state {wrapper.state.name}): run ait.tune or ait.load "
                "first."
            )
        for index, backend in enumerate(backends.values()):
            graphs.append((f"module {wrapper.name!r} graph {index}", backend))
    return graphs


def tuned_module(wrapper: AITuneModule) -> Any:
    """AITune's ``TunedModule`` behind an ``ait.Module`` once tuned or loaded (its graphs' backends), else None."""
    return getattr(wrapper, "_self_wrapper", None)
