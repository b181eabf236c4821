"""Artifact formats, by name. Adding a format: a module, a line here, and its name in a frontend's ``formats``."""

from aitune_trt_aot.formats.aot_inductor import AotInductorFormat
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.formats.exported_program import ExportedProgramFormat
from aitune_trt_aot.formats.torchscript import TorchScriptFormat

FORMATS: dict[str, ArtifactFormat] = {
    f.name: f for f in (ExportedProgramFormat(), TorchScriptFormat(), AotInductorFormat())
}

__all__ = ["FORMATS", "ArtifactFormat"]
