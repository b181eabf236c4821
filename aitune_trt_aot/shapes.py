"""The per-call guard: every call is checked against the built input ranges before it reaches the engines.

A TensorRT engine runs only inside the min..max shapes it was built for; outside them some runtimes
return nothing and log a warning. ``ShapeGuard`` checks every call first (``aitune_trt_aot.ranges``) and raises
a clear error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.graph_spec import GraphSpec

from aitune_trt_aot.call_plans import ARG, CallPlan, fetch, plan_call
from aitune_trt_aot.errors import InputShapeError
from aitune_trt_aot.ranges import InputRange, dtype_named, graph_spec_ranges
from aitune_trt_aot.wrappers import rebind, reduced_signature

MAX_CALL_PLANS = 64  # call structures remembered per guard; further ones are bound on each call
_UNPLANNED = object()  # no plan made yet for a call structure (None means: bind each call)


def _range_error(spec: InputRange, problem: str) -> InputShapeError:
    return InputShapeError(
        f"Input {spec.name!r} {problem}. The TensorRT engine takes {spec.name!r} as {spec.describe()}. Re-tune with "
        "batch sizes (or AITune dynamic shapes) that cover this input, or split the call."
    )


class ShapeGuard:
    """Prepares each call for the engines: checks tensors against the built ranges, checks and drops constants.

    Constants are the plain-valued arguments (numbers, strings, booleans, None) of the call the engines
    were captured from; they are built into the engines and taken out of the captured signature.
    """

    def __init__(
        self,
        signature: ForwardSignature,
        ranges: list[InputRange],
        constants: dict[str, Any],
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """Create a guard for calls of ``signature``.

        Args:
            signature: The module's forward signature as AITune records it.
            ranges: The allowed shapes of each tensor input.
            constants: Plain-valued arguments built into the engines, by parameter name.
            defaults: The module's real default values of those parameters (AITune's recorded
                signature knows only that a default exists), used when a call omits one.

        """
        self.signature = signature
        self.ranges = ranges
        self.constants = constants
        self.defaults = dict(defaults or {})
        self.call_signature = inspect.Signature([p.to_parameter() for p in signature.parameters])
        self._reduced = reduced_signature(self.call_signature, set(constants))
        self._plans: dict[tuple[int, tuple[str, ...]], CallPlan | None] = {}

    def prepare(self, args: tuple, kwargs: dict[str, Any], check_shapes: bool = True) -> tuple[tuple, dict[str, Any]]:
        """Return the call the engines take; raise :class:`InputShapeError` when the call does not fit them."""
        if not self.constants and not check_shapes:
            return args, kwargs
        structure = (len(args), tuple(kwargs))
        plan = self._plans.get(structure, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = self._plan(structure)
        if plan is None:
            return self._prepare_by_binding(args, kwargs, check_shapes)
        if check_shapes:
            for (kind, key), spec in plan.ranges:  # a range's slot is always in the call: no fetch() needed
                problem = spec.violation(args[key] if kind == ARG else kwargs[key])
                if problem is not None:
                    raise _range_error(spec, problem)
        if not self.constants:
            return args, kwargs
        for name, slot in plan.constants:
            self._check_constant(name, fetch(slot, args, kwargs))
        return tuple(fetch(slot, args, kwargs) for slot in plan.args), {
            name: fetch(slot, args, kwargs) for name, slot in plan.kwargs
        }

    def _plan(self, structure: tuple[int, tuple[str, ...]]) -> CallPlan | None:
        """Make (and remember) the plan for calls of this structure: positional count, keywords; None: bind each."""
        plan = plan_call(self.call_signature, self._reduced, self.ranges, self.constants, self.defaults, *structure)
        if len(self._plans) < MAX_CALL_PLANS:
            self._plans[structure] = plan
        return plan

    def _prepare_by_binding(self, args: tuple, kwargs: dict[str, Any], check_shapes: bool) -> tuple[tuple, dict]:
        """:meth:`prepare` for calls without a plan: bind the call to the signature (raises binding's errors)."""
        bound = self.call_signature.bind(*args, **kwargs)
        if check_shapes:
            self._check_ranges(bound.arguments)
        if not self.constants:
            return args, kwargs
        arguments = bound.arguments
        for name in self.constants:
            self._check_constant(name, arguments[name] if name in arguments else self.defaults.get(name))
        reduced = rebind(self._reduced, {k: v for k, v in arguments.items() if k not in self.constants})
        return reduced.args, reduced.kwargs

    def _check_constant(self, name: str, given: Any) -> None:
        built = self.constants[name]
        if type(given) is not type(built) or given != built:
            raise InputShapeError(
                f"Argument {name!r} is {given!r} in this call, but the engine was built with {name}={built!r} "
                "and has that value built in. Call it with the tuned value, re-tune with this one, or pass "
                "it as a tensor."
            )

    def strip_constants(self, sample: tuple[tuple, dict]) -> tuple[tuple, dict]:
        """The recorded ``sample`` as the constants-free capture signature takes it (no checks)."""
        return self.prepare(*sample, check_shapes=False)

    def _check_ranges(self, arguments: dict[str, Any]) -> None:
        for spec in self.ranges:
            try:
                value = spec.locator.get_value(arguments)
            except (IndexError, KeyError, AttributeError):
                raise InputShapeError(
                    f"Input {spec.name!r} is missing from this call; the engine was built with it."
                ) from None
            problem = spec.violation(value)
            if problem is not None:
                raise _range_error(spec, problem)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {
            "forward_signature": self.signature.to_dict(),
            "constants": dict(self.constants),
            "defaults": dict(self.defaults),
            "ranges": [
                {
                    "locator": r.locator,
                    "name": r.name,
                    "min_shape": list(r.min_shape),
                    "opt_shape": list(r.opt_shape),
                    "max_shape": list(r.max_shape),
                    "dtype": str(r.dtype).removeprefix("torch."),
                }
                for r in self.ranges
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeGuard:
        """Inverse of :meth:`to_dict`."""
        ranges = [
            InputRange(
                locator=r["locator"],
                name=r["name"],
                min_shape=tuple(r["min_shape"]),
                opt_shape=tuple(r["opt_shape"]),
                max_shape=tuple(r["max_shape"]),
                dtype=dtype_named(r["dtype"]),
            )
            for r in data["ranges"]
        ]
        return cls(
            ForwardSignature.from_dict(data["forward_signature"]),
            ranges,
            dict(data.get("constants", {})),
            dict(data.get("defaults", {})),
        )

    @classmethod
    def from_graph_spec(
        cls,
        graph_spec: GraphSpec,
        sample: tuple[tuple, dict],
        forward: Callable[..., Any] | None = None,
        ranges: list[InputRange] | None = None,
    ) -> ShapeGuard:
        """The guard for the graph AITune recorded; ``sample`` is the call the engines were captured from.

        Top-level arguments that are plain values (numbers, strings, booleans, None) in that call are
        built into the engines as constants; later calls must pass the same values. Pass the module's
        ``forward`` so omitted arguments take their real defaults, and ``ranges`` when they are already computed.
        """
        signature = (
            inspect.signature(forward)
            if forward is not None
            else cls(graph_spec.forward_signature, [], {}).call_signature
        )
        bound = signature.bind(*sample[0], **sample[1])
        bound.apply_defaults()
        constants = {
            name: value
            for name, value in bound.arguments.items()
            if value is None or isinstance(value, (bool, int, float, str))
        }
        defaults = {
            name: signature.parameters[name].default
            for name in constants
            if signature.parameters[name].default is not inspect.Parameter.empty
        }
        ranges = graph_spec_ranges(graph_spec) if ranges is None else ranges
        return cls(graph_spec.forward_signature, ranges, constants, defaults)
