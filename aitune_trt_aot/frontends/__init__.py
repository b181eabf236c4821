"""IR frontends, by the name the config's ``ir`` uses. Adding an IR means adding a module and a line here."""

from aitune_trt_aot.frontends.base import CompiledModel, CompileRequest, Frontend, UnsupportedInputsError
from aitune_trt_aot.frontends.dynamo import DynamoFrontend
from aitune_trt_aot.frontends.fx import FxFrontend
from aitune_trt_aot.frontends.torchscript import TorchScriptFrontend

FRONTENDS: dict[str, Frontend] = {f.name: f for f in (DynamoFrontend(), TorchScriptFrontend(), FxFrontend())}


def get_frontend(ir: str) -> Frontend:
    """The frontend for a canonical IR name (see ``config.normalize_ir``)."""
    return FRONTENDS[ir]


__all__ = ["FRONTENDS", "CompileRequest", "CompiledModel", "Frontend", "UnsupportedInputsError", "get_frontend"]
