"""The project's exceptions: one base class, one subclass per kind of problem.

Each also derives from the built-in exception users would expect (``ValueError`` for bad inputs,
``RuntimeError`` for failures), so ``except ValueError`` keeps working. Every message says what was
wrong and what to do. This module imports nothing else from the package, so the ``.pt2`` runtime can
use it without AITune or Torch-TensorRT.
"""

from __future__ import annotations


class AitrtAotError(Exception):
    """Base class of every error aitune-trt-aot raises on purpose."""


class ConfigError(AitrtAotError, ValueError):
    """A configuration value is of the wrong type or out of range."""


class MissingRequirementError(AitrtAotError, RuntimeError):
    """A build or load step needs something this machine does not have (GPU, Torch-TensorRT, a frontend)."""


class UnsupportedInputsError(AitrtAotError, ValueError):
    """The model's call has inputs the chosen frontend cannot compile."""


class BuildError(AitrtAotError, RuntimeError):
    """Torch-TensorRT could not build usable engines; the message names the IR, precision and stack."""


class InputShapeError(AitrtAotError, ValueError):
    """A call's input lies outside the shapes or dtypes the engines were built for."""


class ArtifactError(AitrtAotError, RuntimeError):
    """A saved artifact is missing, damaged, or was written in a form this version cannot read."""


class Pt2LoadError(ArtifactError):
    """A ``.pt2`` package, or what running it needs, is missing or unusable."""


class Pt2InputError(InputShapeError):
    """A call's tensors do not fit the shapes and dtypes a ``.pt2`` package was compiled for."""


class Pt2ExportError(AitrtAotError, ValueError):
    """What was given cannot be written as one ``.pt2`` package."""


class DirectCallError(AitrtAotError, ValueError):
    """What was given to ``direct_call`` is not one ``ait.Module`` served by this backend in one graph."""


class EngineCallError(AitrtAotError, RuntimeError):
    """TensorRT reported a failure while the engines ran a call: its outputs were not computed."""
