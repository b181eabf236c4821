"""Installing this checkout with pip into a throwaway folder, offline, and running Python with that folder as a site.

Used by the tests of the start-up hook that makes ``import tensorrt`` find TensorRT-RTX
(``aitune_trt_aot_tensorrt_alias``): Python runs ``.pth`` files only from site folders, never from ``PYTHONPATH``
entries, so these tests install the project and process the folder as interpreter start-up does
(``site.addsitedir``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT

PTH_FILE = REPO_ROOT / "aitune_trt_aot_tensorrt_alias.pth"
# What pip needs to build the project: pyproject.toml's metadata, setup.py's build hook, the sdist manifest.
PROJECT_FILES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "aitune_trt_aot_tensorrt_alias.py",
    PTH_FILE.name,
)


def copy_project(destination: Path) -> Path:
    """Copy what pip needs to build this project to ``destination`` (pip builds in place: build/, *.egg-info)."""
    destination.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, destination / name)
    shutil.copytree(
        REPO_ROOT / "aitune_trt_aot", destination / "aitune_trt_aot", ignore=shutil.ignore_patterns("__pycache__")
    )
    return destination


def pip_install(workdir: Path, *, editable: bool = False) -> Path:
    """``pip install [-e] --target <workdir>/site`` a copy of this checkout, offline; return the site folder.

    No index, no build isolation (setuptools comes from this Python), no dependencies: it works on a host without
    network. An editable install maps the package to the copy in ``<workdir>/project``.
    """
    project = copy_project(workdir / "project")
    site_dir = workdir / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--no-index", "--no-build-isolation", "--target", str(site_dir)]
    command += ["-e", str(project)] if editable else [str(project)]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return site_dir


def site_prologue(site_dir: Path) -> str:
    """Python code that processes ``site_dir`` as interpreter start-up processes site-packages (runs its .pth files)."""
    return f"import site; site.addsitedir({str(site_dir)!r})\n"
