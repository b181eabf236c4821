"""Modules that wrap the user's module for capture while keeping a ``forward`` signature torch.export can bind.

torch.export (and AITune's exporter) match inputs and dynamic shapes to ``inspect.signature(forward)``,
so a generic ``forward(*args, **kwargs)`` wrapper would lose the parameter names. Each wrapper here
gets an explicit signature with :func:`with_signature`.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

from torch import nn

_SELF = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)


def with_signature(wrapper: nn.Module, signature: inspect.Signature) -> nn.Module:
    """Give ``wrapper.forward`` the given signature (by a one-off subclass) and return ``wrapper``."""
    base = type(wrapper)

    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return base.forward(self, *args, **kwargs)

    forward.__signature__ = signature.replace(parameters=[_SELF, *signature.parameters.values()])
    wrapper.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__})
    return wrapper


def reduced_signature(signature: inspect.Signature, removed: set[str]) -> inspect.Signature:
    """``signature`` without the parameters named in ``removed``."""
    return signature.replace(parameters=[p for n, p in signature.parameters.items() if n not in removed])


def rebind(signature: inspect.Signature, arguments: dict[str, Any]) -> inspect.BoundArguments:
    """Bound arguments of ``signature`` from a name -> value dict (positional-only parameters included)."""
    ordered = OrderedDict((name, arguments[name]) for name in signature.parameters if name in arguments)
    return inspect.BoundArguments(signature, ordered)


class ConstantsBound(nn.Module):
    """Calls ``module`` with some arguments fixed to constant values; ``forward`` takes the others.

    Non-tensor arguments (numbers, flags, None) are specialised into the engines anyway; taking them
    out of the captured signature keeps the exported program's inputs tensors only, which every
    artifact format can serialise. Create it with :func:`bind_constants`.
    """

    def __init__(self, module: nn.Module, constants: dict[str, Any]) -> None:
        """Wrap ``module`` with ``constants`` (parameter name -> value)."""
        super().__init__()
        self.module = module
        self.constants = dict(constants)
        self.full_signature = inspect.signature(module.forward)
        self.signature = reduced_signature(self.full_signature, set(constants))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Add the constants back and call the wrapped module."""
        arguments = {**self.signature.bind(*args, **kwargs).arguments, **self.constants}
        full = rebind(self.full_signature, arguments)
        return self.module(*full.args, **full.kwargs)


def bind_constants(module: nn.Module, constants: dict[str, Any]) -> nn.Module:
    """``module`` itself when there are no constants, else a :class:`ConstantsBound` with the reduced signature."""
    if not constants:
        return module
    wrapper = ConstantsBound(module, constants)
    return with_signature(wrapper, wrapper.signature)
