"""Compile step: the frontend builds the engines, with the plan's precision fallback when autocast fails."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from aitune_trt_aot import hints
from aitune_trt_aot.compiled import CompiledModel
from aitune_trt_aot.errors import BuildError, MissingRequirementError, UnsupportedInputsError
from aitune_trt_aot.frontends import CompileRequest
from aitune_trt_aot.plan import BuildPlan, PlanConfig, autocast_fallback
from aitune_trt_aot.precision import module_for

logger = logging.getLogger(__name__)

# Where Torch-TensorRT logs what TensorRT's builder reports (its ILogger) and its own errors. The first name is not
# below "torch_tensorrt" in logging's hierarchy (no dot), so both are watched.
TENSORRT_LOGGERS = ("torch_tensorrt [TensorRT Conversion Context]", "torch_tensorrt")
_KEPT_LOGGED_ERRORS = 3
_LOGGED_ERROR_CHARS = 400


class _ErrorRecords(logging.Handler):
    """Keeps the messages of the records at ERROR or above that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def tensorrt_errors_logged() -> Iterator[list[str]]:
    """The ERROR messages Torch-TensorRT's loggers receive inside the block (why TensorRT built no engine)."""
    handler = _ErrorRecords()
    loggers = [logging.getLogger(name) for name in TENSORRT_LOGGERS]
    for each in loggers:
        each.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for each in loggers:
            each.removeHandler(handler)


def compile_model(
    plan: BuildPlan, request: CompileRequest, config: PlanConfig, settings: Any
) -> tuple[CompiledModel, BuildPlan]:
    """Compile under ``plan``; where autocast fails, again under the plan's fallback (``plan.autocast_fallback``).

    Returns what was built and the plan it was built under. ``settings`` are the user's ``CompilationSettings``.
    Errors that say what to do already pass through; any other failure is a :class:`BuildError` naming the plan.
    """
    try:
        with tensorrt_errors_logged() as logged:
            return _compile(plan, request), plan
    except (MissingRequirementError, UnsupportedInputsError, BuildError):
        raise
    except Exception as error:
        fallback = autocast_fallback(plan, config, settings)
        if fallback is None:
            raise build_failed(plan, error, logged) from error
        logger.warning(
            "Torch-TensorRT autocast to %s failed for this model (%s: %s); building with the module cast to %s "
            "instead (precision_route='cast_module').",
            plan.precision.dtype,
            type(error).__name__,
            error,
            plan.precision.dtype,
        )
        try:
            with tensorrt_errors_logged() as logged:
                return _compile(fallback, request), fallback
        except Exception as second:
            raise build_failed(fallback, second, logged) from second


def _compile(plan: BuildPlan, request: CompileRequest) -> CompiledModel:
    module = module_for(plan.precision, request.module, request.sample, request.device)
    return plan.frontend.compile(dataclasses.replace(request, module=module, settings=plan.precision.settings))


def build_failed(plan: BuildPlan, error: Exception, logged: list[str] | None = None) -> BuildError:
    """The error for a compile that failed under ``plan``; ``logged``: what TensorRT reported meanwhile (the why)."""
    reported = ""
    if logged:
        kept = [message[:_LOGGED_ERROR_CHARS] for message in logged[-_KEPT_LOGGED_ERRORS:]]
        reported = f" TensorRT reported: {' | '.join(kept)}."
    return BuildError(
        f"Torch-TensorRT could not build {plan.describe()}: {type(error).__name__}: {error}.{reported}"
        + hints.after_failed_build(plan.frontend.name)
    )
