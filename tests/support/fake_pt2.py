"""Stand-ins for what ``load_pt2`` gets from torch and Torch-TensorRT: the AOTInductor loader and its engines."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot.pt2 import engines as pt2_engines


class FakeEngine:
    """Answers ``update_runtime_settings`` like Torch-TensorRT's ``tensorrt::Engine`` and records each call."""

    def __init__(self) -> None:
        self.settings: list[tuple[int, int, Any]] = []

    def update_runtime_settings(self, kernel_strategy: int, cuda_graph_strategy: int, runtime_cache: Any) -> None:
        self.settings.append((kernel_strategy, cuda_graph_strategy, runtime_cache))


def recognise_fake_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``pt2.engines`` take :class:`FakeEngine` objects for engines (real ones are TorchBind objects)."""
    monkeypatch.setattr(pt2_engines, "is_tensorrt_engine", lambda value: isinstance(value, FakeEngine))


class FakeLoader:
    """Answers like ``torch._C._aoti.AOTIModelPackageLoader`` for a package traced as ``f(x, *, bias)``.

    ``boxed_run`` records the flat tensors it got and returns ``(x.sum(), bias.sum())`` as a flat list; it counts how
    many calls run at once (``most_at_once``), taking ``delay`` seconds each. ``custom_objects`` is what
    ``get_custom_objs`` returns; None: the loader has no such method (another torch release).
    """

    def __init__(
        self, metadata: dict[str, str], custom_objects: dict[str, Any] | None = None, delay: float = 0.0
    ) -> None:
        self.metadata = metadata
        self.custom_objects = custom_objects
        self.delay = delay
        self.calls: list[list[torch.Tensor]] = []
        self.running = 0
        self.most_at_once = 0
        self._count_lock = threading.Lock()
        tensor = torch.zeros(1)
        _, self.in_spec = pytree.tree_flatten(((tensor,), {"bias": tensor}))
        _, self.out_spec = pytree.tree_flatten({"x": tensor, "bias": tensor})

    def __getattr__(self, name: str) -> Any:
        if name == "get_custom_objs" and self.__dict__.get("custom_objects") is not None:
            return lambda: dict(self.custom_objects)
        raise AttributeError(name)

    def get_call_spec(self) -> list[str]:
        return [pytree.treespec_dumps(self.in_spec), pytree.treespec_dumps(self.out_spec)]

    def get_metadata(self) -> dict[str, str]:
        return dict(self.metadata)

    def boxed_run(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        with self._count_lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        self.calls.append(list(tensors))
        with self._count_lock:
            self.running -= 1
        return [t.sum() for t in tensors]
