"""CPU: every private name of torch, Torch-TensorRT or AITune the package reaches into is listed in ``stack.py``."""

from __future__ import annotations

import ast
import importlib
import re

import pytest

from aitune_trt_aot import stack
from tests.support.processes import REPO_ROOT


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _own_private_names(trees: list[ast.AST]) -> set[str]:
    """Private names the package defines itself: functions, classes, class attributes, ``self._x = ...``."""
    own: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    own.add(node.attr)
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    targets = statement.targets if isinstance(statement, ast.Assign) else []
                    if isinstance(statement, ast.AnnAssign):
                        targets = [statement.target]
                    own.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in own if name.startswith("_")}


def foreign_private_names(sources: list[str]) -> set[str]:
    """Names starting with ``_`` that the code imports from other packages or reads as attributes it did not define."""
    trees = [ast.parse(source) for source in sources]
    own = _own_private_names(trees)
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] != "aitune_trt_aot":
                found.update(p for p in node.module.split(".") if p.startswith("_") and not _dunder(p))
                found.update(a.name for a in node.names if a.name.startswith("_"))
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not _dunder(node.attr):
                found.add(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr"):
                name = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else None
                if isinstance(name, str) and name.startswith("_") and not _dunder(name):
                    found.add(name)
    return found - own


def _listed(name: str, text: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def test_every_private_name_used_is_listed_in_stack_py() -> None:
    """A new reach into another package's private name must come with its entry (and deletion condition)."""
    sources = [path.read_text() for path in (REPO_ROOT / "aitune_trt_aot").rglob("*.py")]
    used = foreign_private_names(sources)
    assert {"_pytree", "_self_wrapper", "_to_torchbind_handle"} <= used, "the scan finds the known ones"
    assert sorted(name for name in used if not _listed(name, stack.__doc__ or "")) == []


def test_the_scan_sees_imports_attributes_and_getattr_but_not_own_names() -> None:
    """Private imports, attribute reads and getattr strings count; names the code defines itself do not."""
    source = (
        "from torch._inductor import x\n"
        "from lib import _helper\n"
        "class A:\n"
        "    _level = 1\n"
        "    def __init__(self):\n"
        "        self._mine = other._theirs\n"
        "def _local(obj):\n"
        "    return getattr(obj, '_hidden', None), obj._mine, obj.__class__\n"
    )
    assert foreign_private_names([source]) == {"_inductor", "_helper", "_theirs", "_hidden"}
    assert _listed("_type", "ScriptObject._type()") and not _listed("_type", "strongly_typed")


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("aitune_trt_aot.plan", "autocast_fallback"),
        ("aitune_trt_aot.formats.raw_engines", "rebuild_engine"),
        ("aitune_trt_aot.formats.aot_inductor", "packaging_lock"),
        ("aitune_trt_aot.formats.aot_inductor", "_quiet_fake_engine_warnings"),
        ("aitune_trt_aot.pt2.installed", "share_cxx_runtime"),
        ("aitune_trt_aot.pt2.engines", "KERNEL_STRATEGY_CODES"),
        ("aitune_trt_aot.pt2.engines", "is_tensorrt_engine"),
        ("aitune_trt_aot.formats.aot_inductor", "PACKAGE_COMPILE_CONFIGS"),
        ("aitune_trt_aot.tuned", "tuned_module"),
        ("aitune_trt_aot.safe_save", "destination"),
    ],
)
def test_the_places_stack_py_names_exist(module: str, name: str) -> None:
    """Workarounds that live where they act are named in stack.py by a place that exists (a rename updates both)."""
    assert hasattr(importlib.import_module(module), name)
    assert _listed(name, stack.__doc__ or ""), name
