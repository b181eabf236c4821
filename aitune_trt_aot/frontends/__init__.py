"""IR frontends, by the name the config's ``ir`` uses. Adding an IR means adding a module and a line here."""

from aitune_trt_aot.frontends.base import CompileRequest, Frontend, FrontendOptions
from aitune_trt_aot.frontends.dynamo import DynamoFrontend
from aitune_trt_aot.frontends.fx import FxFrontend
from aitune_trt_aot.frontends.torchscript import TorchScriptFrontend

FRONTENDS: dict[str, Frontend] = {f.name: f for f in (DynamoFrontend(), TorchScriptFrontend(), FxFrontend())}

__all__ = ["FRONTENDS", "CompileRequest", "Frontend", "FrontendOptions"]
