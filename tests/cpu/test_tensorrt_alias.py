"""The start-up hook that makes ``import tensorrt`` find TensorRT-RTX in any import order (issue 29, item 3).

Each case runs in a fresh Python process that processes a folder holding ``aitune_trt_aot_tensorrt_alias.pth`` as
interpreter start-up processes site-packages (``site.addsitedir``). Cases about the finder's rules run with ``-S``
(no site-packages) over fake ``tensorrt`` / ``tensorrt_rtx`` packages; the others use this Python's real
TensorRT-RTX bindings and AITune.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.install import PTH_FILE, pip_install, site_prologue
from tests.support.processes import REPO_ROOT, run_python, subprocess_env

# A Python module of the fake packages records each execution here, so that a module loaded twice shows.
FAKE_RTX = {
    "tensorrt_rtx/__init__.py": "LOADED = ['tensorrt_rtx']\n__version__ = '1.6-fake'\n",
    "tensorrt_rtx/sub.py": "from tensorrt_rtx import LOADED\nLOADED.append(__name__)\n",
    "tensorrt_rtx/other.py": "from tensorrt_rtx import LOADED\nLOADED.append(__name__)\n",
}
FAKE_REAL = {
    "tensorrt/__init__.py": "__version__ = '10.14-fake'\n",
    "tensorrt/sub.py": "",
}
# Torch-TensorRT 2.14's torch_tensorrt._TensorRTProxyModule, reduced to what the finder looks at.
PROXY = """
import types
class TensorRTProxyModule(types.ModuleType):
    def __init__(self, target):
        self._target_module = target
        self.__path__ = target.__path__
    def __getattr__(self, name):
        return getattr(self._target_module, name)
"""

SUBMODULES = """
import importlib.util, json, sys
import tensorrt, tensorrt_rtx
same = tensorrt is tensorrt_rtx
import tensorrt.sub
sub_same = sys.modules["tensorrt.sub"] is sys.modules["tensorrt_rtx.sub"] is tensorrt_rtx.sub
sys.modules["tensorrt"] = TensorRTProxyModule(tensorrt_rtx)  # what `import torch_tensorrt` does
import tensorrt.other
other_same = sys.modules["tensorrt.other"] is sys.modules["tensorrt_rtx.other"]
missing_spec = importlib.util.find_spec("tensorrt.missing")
try:
    import tensorrt.missing
    error = None
except ModuleNotFoundError as e:
    error = str(e)
print(json.dumps({"same": same, "sub_same": sub_same, "other_same": other_same, "loaded": tensorrt_rtx.LOADED,
                  "missing_spec": missing_spec is None, "error": error}))
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _hook_site(tmp_path: Path) -> Path:
    """A site folder holding only the project's .pth file (the module it imports comes from this checkout)."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy2(PTH_FILE, site_dir / PTH_FILE.name)
    return site_dir


def _run(
    code: str, *, isolated_from: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict:
    """Run ``code`` in a fresh Python; return the JSON it printed last.

    ``isolated_from``: run with ``-S`` (no site-packages) and only that folder and this checkout on the path.
    """
    env = env or subprocess_env()
    args = ["-c", code]
    if isolated_from is not None:
        env["PYTHONPATH"] = os.pathsep.join((str(isolated_from), str(REPO_ROOT)))
        args = ["-S", *args]
    result = run_python(*args, cwd=cwd or isolated_from, env=env)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _env_without_this_checkout() -> dict[str, str]:
    """The environment with this checkout taken off ``PYTHONPATH`` (other entries, e.g. a GPU host's stack, stay)."""
    env = subprocess_env()
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != REPO_ROOT]
    env["PYTHONPATH"] = os.pathsep.join(entries)
    return env


def _no_real_tensorrt() -> bool:
    return importlib.machinery.PathFinder.find_spec("tensorrt") is None


needs_tensorrt_rtx_only = pytest.mark.skipif(
    not _no_real_tensorrt() or importlib.machinery.PathFinder.find_spec("tensorrt_rtx") is None,
    reason="needs TensorRT-RTX's bindings (tensorrt_rtx) and no standard tensorrt, as the CPU test environment has",
)


@needs_tensorrt_rtx_only
def test_start_up_hook_imports_nothing_until_tensorrt_is_imported(tmp_path: Path) -> None:
    """Processing the .pth adds the finder and its own module only; ``import tensorrt`` then gives tensorrt_rtx."""
    code = (
        "import json, site, sys, time\n"
        "before = set(sys.modules); start = time.perf_counter()\n"
        f"site.addsitedir({str(_hook_site(tmp_path))!r})\n"
        "seconds = time.perf_counter() - start\n"
        "new, first = sorted(set(sys.modules) - before), type(sys.meta_path[0]).__name__\n"
        "import tensorrt, tensorrt_rtx\n"
        "print(json.dumps({'new': new, 'seconds': seconds, 'first_finder': first, 'same': tensorrt is tensorrt_rtx,\n"
        "                  'version': tensorrt.__version__}))\n"
    )
    report = _run(code)
    print(f"\n[start-up hook] {report}")
    assert set(report["new"]) <= {"__future__", "aitune_trt_aot_tensorrt_alias"}, report["new"]
    assert report["first_finder"] == "TensorRTAlias"
    assert report["same"] is True


AITUNE_FIRST = """
import json, sys
import aitune.torch
import tensorrt, tensorrt_rtx, torch
from aitune.torch.backend.backend import Backend
from aitune.torch.backend.tensorrt.torch_output_allocator import TorchOutputAllocator

facts = {"ours_imported": "aitune_trt_aot" in sys.modules, "same": tensorrt is tensorrt_rtx,
         "aitune_uses_rtx": TorchOutputAllocator.__mro__[1] is tensorrt_rtx.IOutputAllocator}
entry = torch.load(sys.argv[1], weights_only=False)  # a checkpoint entry's marker imports aitune_trt_aot
resolved = {c.__name__: c for c in Backend.__subclasses__()}["TorchTensorRTAotBackend"]
print(json.dumps(facts | {"resolved": resolved.__module__}))
"""


@needs_tensorrt_rtx_only
@pytest.mark.parametrize("hook", [True, False], ids=["with-hook", "without-hook"])
def test_aitune_imported_first(tmp_path: Path, hook: bool) -> None:
    """With the hook, ``import aitune.torch`` comes first and an entry's marker then brings our backend in.

    Without it (the control: what issue 29 reported) the same import fails with "No module named 'tensorrt'".
    """
    import torch

    from aitune_trt_aot.checkpoint import CheckpointWriter

    torch.save({"type": "TorchTensorRTAotBackend", "writer": CheckpointWriter()}, tmp_path / "entry.pt")
    prologue = site_prologue(_hook_site(tmp_path)) if hook else ""
    result = run_python("-c", prologue + AITUNE_FIRST, str(tmp_path / "entry.pt"), cwd=tmp_path)
    if not hook:
        assert result.returncode != 0 and "No module named 'tensorrt'" in result.stderr, result.stderr[-3000:]
        return
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"ours_imported": False, "same": True, "aitune_uses_rtx": True, "resolved": "aitune_trt_aot.backend"}
    assert report == expected


def test_a_real_tensorrt_is_never_shadowed(tmp_path: Path) -> None:
    """Where a standard ``tensorrt`` is installed, it is what ``import tensorrt`` gives; tensorrt_rtx stays unloaded."""
    fakes = _write(tmp_path / "fakes", FAKE_REAL | FAKE_RTX)
    code = site_prologue(_hook_site(tmp_path)) + (
        "import json, sys, tensorrt, tensorrt.sub\n"
        "print(json.dumps({'version': tensorrt.__version__, 'sub': tensorrt.sub.__file__,\n"
        "                  'rtx_loaded': 'tensorrt_rtx' in sys.modules}))\n"
    )
    report = _run(code, isolated_from=fakes)
    assert report == {"version": "10.14-fake", "sub": str(fakes / "tensorrt/sub.py"), "rtx_loaded": False}


def test_a_bare_tensorrt_folder_on_the_path_is_not_taken_for_tensorrt(tmp_path: Path) -> None:
    """A folder named ``tensorrt`` without ``__init__.py`` (say, engines in the working folder) is no TensorRT."""
    fakes = _write(tmp_path / "fakes", FAKE_RTX | {"tensorrt/model.engine": "not Python"})
    code = site_prologue(_hook_site(tmp_path)) + (
        "import json, tensorrt, tensorrt_rtx\nprint(json.dumps({'same': tensorrt is tensorrt_rtx}))\n"
    )
    assert _run(code, isolated_from=fakes) == {"same": True}


def test_submodules_are_the_tensorrt_rtx_modules_also_behind_torch_tensorrts_proxy(tmp_path: Path) -> None:
    """``tensorrt.X`` is ``tensorrt_rtx.X`` itself, loaded once, also after Torch-TensorRT swapped in its proxy."""
    fakes = _write(tmp_path / "fakes", FAKE_RTX)
    code = site_prologue(_hook_site(tmp_path)) + PROXY + SUBMODULES
    report = _run(code, isolated_from=fakes)
    assert report == {
        "same": True,
        "sub_same": True,
        "other_same": True,
        "loaded": ["tensorrt_rtx", "tensorrt_rtx.sub", "tensorrt_rtx.other"],
        "missing_spec": True,
        "error": "No module named 'tensorrt.missing'",
    }


def test_without_any_tensorrt_the_import_error_is_the_usual_one(tmp_path: Path) -> None:
    """Neither TensorRT nor TensorRT-RTX installed: ``import tensorrt`` fails as it would without the hook."""
    code = site_prologue(_hook_site(tmp_path)) + (
        "import json\n"
        "try:\n"
        "    import tensorrt\n"
        "    error = None\n"
        "except ModuleNotFoundError as e:\n"
        "    error = [str(e), e.name]\n"
        "print(json.dumps({'error': error}))\n"
    )
    report = _run(code, isolated_from=_write(tmp_path / "fakes", {"unrelated.py": ""}))
    assert report == {"error": ["No module named 'tensorrt'", "tensorrt"]}


def test_start_up_never_fails_and_the_hook_can_be_turned_off(tmp_path: Path) -> None:
    """A .pth whose module is gone does nothing, silently; ``AITUNE_TRT_AOT_TENSORRT_ALIAS=0`` keeps the finder out."""
    site_dir = _hook_site(tmp_path)
    env = subprocess_env()
    env["PYTHONPATH"] = ""  # the module is not importable: an editable install whose checkout was deleted
    result = run_python("-S", "-c", site_prologue(site_dir) + "print('started')", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "started", "")

    env = subprocess_env()
    env["AITUNE_TRT_AOT_TENSORRT_ALIAS"] = "0"
    code = site_prologue(site_dir) + (
        "import json, sys\n"
        "print(json.dumps({'finder': any(type(f).__name__ == 'TensorRTAlias' for f in sys.meta_path)}))\n"
    )
    assert _run(code, env=env) == {"finder": False}


def test_ensure_tensorrt_replaces_a_tensorrt_that_does_not_import(tmp_path: Path) -> None:
    """What ``import aitune_trt_aot`` does: a ``tensorrt`` that fails to import (NVIDIA's stub) gives way to RTX."""
    broken = {"tensorrt/__init__.py": "raise ImportError('libnvinfer.so.10: cannot open shared object file')\n"}
    fakes = _write(tmp_path / "fakes", broken | FAKE_RTX)
    code = (
        "import json, sys\n"
        "from aitune_trt_aot_tensorrt_alias import ensure_tensorrt\n"
        "ensure_tensorrt()\n"
        "import tensorrt, tensorrt_rtx\n"
        "print(json.dumps({'same': tensorrt is tensorrt_rtx}))\n"
    )
    assert _run(code, isolated_from=fakes) == {"same": True}


@needs_tensorrt_rtx_only
@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_pip_install_puts_the_hook_in_site_packages(tmp_path: Path, editable: bool) -> None:
    """``pip install .`` and ``pip install -e .`` both put the .pth at the top of site-packages, and it works there.

    The check runs outside this checkout (no ``PYTHONPATH``): the module the .pth imports comes from the install
    (wheel) or through setuptools' editable finder (editable).
    """
    site_dir = pip_install(tmp_path, editable=editable)
    assert (site_dir / PTH_FILE.name).read_text() == PTH_FILE.read_text()
    code = site_prologue(site_dir) + (
        "import json, sys, tensorrt, tensorrt_rtx, aitune_trt_aot_tensorrt_alias as alias\n"
        "print(json.dumps({'same': tensorrt is tensorrt_rtx, 'module': alias.__file__}))\n"
    )
    report = _run(code, env=_env_without_this_checkout(), cwd=tmp_path)
    home = tmp_path / ("project" if editable else "site")
    assert report == {"same": True, "module": str(home / "aitune_trt_aot_tensorrt_alias.py")}
