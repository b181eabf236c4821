"""Build hook: ships ``aitune_trt_aot_tensorrt_alias.pth`` at the top of site-packages; the rest is pyproject.toml.

The ``.pth`` file makes ``import tensorrt`` find TensorRT-RTX from interpreter start
(``aitune_trt_aot_tensorrt_alias``).
Python runs ``.pth`` files only from site-packages folders, so the file must sit at the wheel's top level, which
package data cannot do. ``build_py`` copies it there: into ``build_lib`` for a wheel (``pip install .``), and into the
folder the editable wheel is made of for ``pip install -e .`` (setuptools >= 64 builds editable wheels from
``install_lib``; ``build_lib`` is not packed there).
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "aitune_trt_aot_tensorrt_alias.pth"


class BuildPyWithPth(build_py):
    """``build_py`` that also puts :data:`PTH_FILE` at the top of the wheel (site-packages once installed)."""

    def run(self) -> None:
        """Build as usual, then copy the ``.pth`` file (setuptools skips the usual copy for editable installs)."""
        super().run()
        top = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        self.mkpath(top)
        self.copy_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), PTH_FILE), os.path.join(top, PTH_FILE))


setup(cmdclass={"build_py": BuildPyWithPth})
