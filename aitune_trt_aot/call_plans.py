"""Where each value of a call sits, planned once per call structure: the shape guard's fast path.

Binding a call to the forward signature (``inspect.Signature.bind``) and building the engines' call from it costs
tens of microseconds, about what a small model's engines take. Where each input sits depends only on the call's
structure (how many positional arguments, which keywords in which order), so :func:`plan_call` binds placeholders
once per structure and :class:`~aitune_trt_aot.shapes.ShapeGuard` then reads the values straight from the call.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aitune_trt_aot.wrappers import rebind

# A value's place in a call: (ARG, position), (KWARG, name) or (DEFAULT, the value used when the call omits it).
Slot = tuple[int, Any]
ARG, KWARG, DEFAULT = 0, 1, 2
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def fetch(slot: Slot, args: tuple, kwargs: dict[str, Any]) -> Any:
    """The value at ``slot`` in the call ``(args, kwargs)``."""
    kind, key = slot
    if kind == ARG:
        return args[key]
    if kind == KWARG:
        return kwargs[key]
    return key


@dataclass(frozen=True)
class CallPlan:
    """Where, in calls of one structure, the checked tensors, the built-in constants and the engines' arguments sit.

    Attributes:
        ranges: ``(slot, range)`` for each tensor input the guard checks.
        constants: ``(parameter name, slot)`` for each value built into the engines.
        args: The slots of the engines' positional arguments, in order.
        kwargs: ``(name, slot)`` of the engines' keyword arguments.

    """

    ranges: tuple[tuple[Slot, Any], ...]
    constants: tuple[tuple[str, Slot], ...]
    args: tuple[Slot, ...]
    kwargs: tuple[tuple[str, Slot], ...]


class _Placeholder:
    """Stands for the value at ``slot`` while a call structure is bound."""

    __slots__ = ("slot",)

    def __init__(self, slot: Slot) -> None:
        self.slot = slot


def plan_call(
    signature: inspect.Signature,
    engine_signature: inspect.Signature,
    ranges: Iterable[Any],
    constants: Collection[str],
    defaults: Mapping[str, Any],
    positional: int,
    keywords: tuple[str, ...],
) -> CallPlan | None:
    """The plan for calls with ``positional`` positional arguments and ``keywords``; None where calls must be bound.

    None for variadic parameters, an input below the top level or missing from the call, or a call that does not
    bind (binding it again raises the error the caller should see).

    ``signature`` is the module's forward signature, ``engine_signature`` the engines' (without the constants),
    ``ranges`` the guard's :class:`~aitune_trt_aot.shapes.InputRange` list, ``defaults`` the real default values of
    constant parameters.
    """
    if any(p.kind in _VARIADIC for p in signature.parameters.values()):
        return None
    try:
        bound = signature.bind(
            *[_Placeholder((ARG, i)) for i in range(positional)], **{k: _Placeholder((KWARG, k)) for k in keywords}
        )
    except TypeError:
        return None
    arguments: dict[str, _Placeholder] = dict(bound.arguments)
    located = []
    for spec in ranges:
        root = spec.locator.root_name
        if spec.locator.depth != 1 or root not in arguments:
            return None
        located.append((arguments[root].slot, spec))
    constant_names = set(constants)
    constant_slots = tuple(
        (name, arguments[name].slot if name in arguments else (DEFAULT, defaults.get(name))) for name in constants
    )
    engine_call = rebind(engine_signature, {k: v for k, v in arguments.items() if k not in constant_names})
    return CallPlan(
        ranges=tuple(located),
        constants=constant_slots,
        args=tuple(p.slot for p in engine_call.args),
        kwargs=tuple((name, p.slot) for name, p in engine_call.kwargs.items()),
    )
