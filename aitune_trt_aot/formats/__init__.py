"""Artifact formats, by name. Adding a format means adding a module and a line here."""

from aitune_trt_aot.formats.aot_inductor import AotInductorFormat
from aitune_trt_aot.formats.base import ArtifactFormat
from aitune_trt_aot.formats.exported_program import ExportedProgramFormat
from aitune_trt_aot.formats.pickled_module import PickledModuleFormat
from aitune_trt_aot.formats.torchscript import TorchScriptFormat

FORMATS: dict[str, ArtifactFormat] = {
    f.name: f for f in (ExportedProgramFormat(), TorchScriptFormat(), PickledModuleFormat(), AotInductorFormat())
}


def get_format(name: str) -> ArtifactFormat:
    """The artifact format called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"Unknown artifact format {name!r}; known formats: {sorted(FORMATS)}.") from None


__all__ = ["FORMATS", "ArtifactFormat", "get_format"]
