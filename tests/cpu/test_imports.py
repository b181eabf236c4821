"""CPU: the package's modules import one another without a cycle; the ``.pt2`` runtime needs torch only."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.processes import REPO_ROOT, run_python

PACKAGE = "aitune_trt_aot"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules imported anywhere in ``tree`` (functions included), except under ``TYPE_CHECKING``."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    paths = {_module_name(p): p for p in (REPO_ROOT / PACKAGE).rglob("*.py")}
    return {name: _imported(ast.parse(path.read_text()), set(paths)) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        on_stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = on_stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    """No module reaches itself through the modules it imports (at import time or inside a function)."""
    graph = import_graph()
    assert "aitune_trt_aot.plan" in graph["aitune_trt_aot.config"], "the graph is read (config imports plan)"
    assert cycles(graph) == []


def test_cycle_detection_finds_a_cycle() -> None:
    """The check above can fail: a two-module loop and a longer one are reported."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": set()}) == [
        ["a", "b"],
        ["c", "d", "e"],
    ]


def test_the_pt2_runtime_imports_with_torch_alone() -> None:
    """With AITune, Torch-TensorRT and TensorRT unimportable, the .pt2 runtime still imports and reads ranges."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('aitune', 'torch_tensorrt', 'tensorrt', 'tensorrt_rtx'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from aitune_trt_aot.pt2.package import input_ranges_from_metadata\n"
        "from aitune_trt_aot.pt2.runtime import load_pt2\n"
        '(r,) = input_ranges_from_metadata(\'[{"dims": [[1, 16], [64, 64]], "dtype": "torch.float32"}]\')\n'
        "print(r.describe(), sorted({m.split('.')[0] for m in sys.modules} & {'aitune', 'torch_tensorrt'}))\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[1..16, 64] float32 []"
