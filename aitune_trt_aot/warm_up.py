"""Warm-up at activation: one call at each input shape the build checked, before the first user call.

TensorRT-RTX compiles shape-specialised kernels on an engine's first call at each shape, and the CUDA-graph runner
captures there: after ``ait.load`` the first call at a shape took 0.86 s for ResNet-50, 0.60 s for the encoder and
0.29 s for the MLP under the default config (docs/benchmark.md). The build's self-check calls the engines at the
recorded shapes and at the ends of the built range; the checkpoint keeps those calls' structure and shapes, not their
data (:class:`WarmCall`). At activation the backend calls the engines once at each of them, with zero-filled tensors,
through what ``infer`` runs (shape guard, runner), so that the kernels are specialised and the graphs captured before
the first user call. Only shapes matter there: TensorRT-RTX specialises kernels, and a CUDA graph records its work,
per shape; the inputs of a later call are copied into the graph's buffers. Outputs are discarded; a failed warm-up
call is logged and the load goes on (that shape's first user call then pays as before).

The cost moves into the load: ``warm_up`` (config) chooses. ``True``: every recorded shape. ``False``: none.
``"auto"`` (default): the shapes whose first call during the build took, together, at most
:data:`AUTO_WARM_UP_SECONDS`, so that loads stay within the load-time goals (``.ait`` <= 2 s, ``.pt2`` <= 5 s for
ResNet-50, whose ``.ait`` loads in 1.3 s). This budget is an estimate, to be set from measurements on the GPU host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot.errors import ConfigError
from aitune_trt_aot.ranges import dtype_named

logger = logging.getLogger(__name__)

WARM_UPS = (True, False, "auto")  # the choices of the config's warm_up
AUTO_WARM_UP_SECONDS = 0.5  # what "auto" may add to a load: first calls measured at build, summed (to be measured)
_PLAIN = (bool, int, float, str)


def check_warm_up(value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of :data:`WARM_UPS`."""
    if value not in WARM_UPS or type(value) not in (bool, str):
        raise ConfigError(f"warm_up must be True, False or 'auto', got {value!r}.")


@dataclass(frozen=True)
class WarmCall:
    """The structure and shapes of one checked call, without its data: what a warm-up call is made from.

    Attributes:
        spec: The call's ``(args, kwargs)`` tree (``torch.utils._pytree.treespec_dumps``).
        leaves: Per leaf, ``{"shape": [...], "dtype": "float32"}`` for a tensor, ``{"value": v}`` for a plain value.
        seconds: The first call at these shapes during the build (kernel compile and capture included), None if
            not measured.

    """

    spec: str
    leaves: tuple[dict[str, Any], ...]
    seconds: float | None = None

    @classmethod
    def of(cls, call: tuple[tuple, dict], seconds: float | None) -> WarmCall | None:
        """The record of ``call``; None where its structure or a plain value cannot be stored."""
        leaves, spec = pytree.tree_flatten(call)
        recorded = []
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                recorded.append({"shape": list(leaf.shape), "dtype": str(leaf.dtype).removeprefix("torch.")})
            elif leaf is None or isinstance(leaf, _PLAIN):
                recorded.append({"value": leaf})
            else:
                return None
        try:
            text = pytree.treespec_dumps(spec)
        except Exception as error:  # a container type pytree cannot write (a custom node)
            logger.info(
                "No warm-up for this call: its structure cannot be stored (%s: %s).", type(error).__name__, error
            )
            return None
        return cls(text, tuple(recorded), None if seconds is None else round(seconds, 4))

    def shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the call's tensors, in argument order."""
        return [tuple(leaf["shape"]) for leaf in self.leaves if "shape" in leaf]

    def call(self, device: torch.device) -> tuple[tuple, dict]:
        """A call of this structure with zero-filled tensors on ``device``."""
        values = [
            torch.zeros(leaf["shape"], dtype=dtype_named(leaf["dtype"]), device=device)
            if "shape" in leaf
            else leaf["value"]
            for leaf in self.leaves
        ]
        return pytree.tree_unflatten(values, pytree.treespec_loads(self.spec))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data for the checkpoint entry and the build cache."""
        return {"spec": self.spec, "leaves": [dict(leaf) for leaf in self.leaves], "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WarmCall:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["spec"]), tuple(dict(leaf) for leaf in data["leaves"]), data.get("seconds"))


def chosen(calls: Sequence[WarmCall], warm_up: bool | str) -> list[WarmCall]:
    """The calls a load makes under the config's ``warm_up`` (see the module docstring), in recorded order."""
    if warm_up is True:
        return list(calls)
    if warm_up is False:
        return []
    picked: list[WarmCall] = []
    total = 0.0
    for call in calls:
        if call.seconds is not None and total + call.seconds <= AUTO_WARM_UP_SECONDS:
            picked.append(call)
            total += call.seconds
    return picked


@dataclass(frozen=True)
class WarmUpReport:
    """What one warm-up did.

    Attributes:
        shapes: The input shapes (every tensor of the call) warmed, in order; a call that failed is not listed.
        seconds: Wall time of the whole warm-up.

    """

    shapes: list[list[tuple[int, ...]]]
    seconds: float


NO_WARM_UP = WarmUpReport([], 0.0)


def warm_up(engines: Callable[..., Any], calls: Sequence[WarmCall], device: torch.device) -> WarmUpReport:
    """Call ``engines`` (what ``infer`` runs) once per call of ``calls``, with zero-filled tensors on ``device``."""
    if not calls:
        return NO_WARM_UP
    start = time.perf_counter()
    warmed = []
    for call in calls:
        try:
            args, kwargs = call.call(device)
            with torch.no_grad():
                engines(*args, **kwargs)
        except Exception as error:  # the load goes on: the first user call at these shapes pays as without warm-up
            logger.warning(
                "Warm-up call at input shapes %s failed (%s: %s); the first call at these shapes compiles its kernels.",
                call.shapes(),
                type(error).__name__,
                error,
            )
            continue
        warmed.append(call.shapes())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    report = WarmUpReport(warmed, round(time.perf_counter() - start, 3))
    logger.info("Warmed up input shapes %s in %.2f s.", report.shapes, report.seconds)
    return report
