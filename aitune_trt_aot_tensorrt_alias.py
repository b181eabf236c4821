"""Make ``import tensorrt`` find TensorRT-RTX in any import order: the one implementation of that alias.

TensorRT-RTX installs its Python module as ``tensorrt_rtx``, but ``aitune.torch`` imports ``tensorrt`` when it is
imported. Torch-TensorRT aliases the name in its own ``__init__``, and ``aitune_trt_aot`` does so when imported
(``aitune_trt_aot.stack.ensure_tensorrt_module`` calls :func:`ensure_tensorrt` here), but a program that imported
``aitune.torch`` first failed with ``No module named 'tensorrt'``.

Installed with the package, ``aitune_trt_aot_tensorrt_alias.pth`` in site-packages runs :func:`install_at_startup`
when the interpreter starts. That puts a :class:`TensorRTAlias` finder first on ``sys.meta_path`` and imports
nothing else: this module needs only ``sys``, ``os`` (both loaded already) and ``__future__``. The finder acts
only when ``tensorrt`` or ``tensorrt.<sub>`` is imported:

* ``tensorrt``: when no other finder finds a module of that name (no standard TensorRT installed; a bare folder
  named ``tensorrt`` does not count) and one finds ``tensorrt_rtx``, ``import tensorrt`` returns the
  ``tensorrt_rtx`` module object itself, as ``sys.modules["tensorrt"]``. A real ``tensorrt`` is never shadowed.
* ``tensorrt.<sub>``, while ``sys.modules["tensorrt"]`` is ``tensorrt_rtx`` or Torch-TensorRT's proxy of it
  (``torch_tensorrt._TensorRTProxyModule``, which keeps the module in ``_target_module``): the module
  ``tensorrt_rtx.<sub>`` itself, so nothing is loaded twice under two names.

``import torch_tensorrt`` later replaces ``sys.modules["tensorrt"]`` with its proxy of the same ``tensorrt_rtx``
module, so AITune's and Torch-TensorRT's TensorRT classes stay the same objects.

This module sits outside the ``aitune_trt_aot`` package: importing the package imports torch and AITune, which
interpreter start-up must not. Set ``AITUNE_TRT_AOT_TENSORRT_ALIAS=0`` to keep the start-up hook out of a process.
Delete together with ``ensure_tensorrt_module`` (removal condition in ``aitune_trt_aot/stack.py``), with the
``.pth`` file and with ``setup.py``, which installs it.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing at interpreter start costs ~10 ms
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

ALIAS = "tensorrt"
TARGET = "tensorrt_rtx"
DISABLE_VARIABLE = "AITUNE_TRT_AOT_TENSORRT_ALIAS"

__all__ = ["ALIAS", "DISABLE_VARIABLE", "TARGET", "TensorRTAlias", "ensure_tensorrt", "install", "install_at_startup"]


class TensorRTAlias:
    """A ``sys.meta_path`` finder that resolves ``tensorrt[.<sub>]`` to ``tensorrt_rtx[.<sub>]`` (module docstring)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """A spec that loads the TensorRT-RTX module for ``fullname``, or None to leave the name to other finders."""
        if fullname == ALIAS:
            if _found_by_other_finders(ALIAS, self) or not _found_by_other_finders(TARGET, self):
                return None  # a real TensorRT (never shadowed), or no TensorRT-RTX either
            return _alias_spec(fullname, TARGET)
        if fullname.startswith(ALIAS + ".") and _aliases_target(sys.modules.get(ALIAS)):
            return _submodule_spec(fullname, TARGET + fullname[len(ALIAS) :])
        return None


class _AliasLoader:
    """Loads a ``tensorrt`` name as the ``tensorrt_rtx`` module object itself (imported on first use)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> None:
        """Default module creation: a placeholder that :meth:`exec_module` replaces in ``sys.modules``."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Import the target and put it in ``sys.modules`` under the alias (the import system returns that entry)."""
        import importlib

        sys.modules[module.__name__] = importlib.import_module(self.target)


def _found_by_other_finders(name: str, exclude: object) -> bool:
    """Whether a ``sys.meta_path`` finder other than ``exclude`` finds top-level module ``name`` (imports nothing).

    A bare folder of that name on the path (a namespace package: no ``__init__.py``, no origin) is not the module.
    """
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        spec = None if finder is exclude or find_spec is None else find_spec(name, None)
        if spec is not None and spec.origin is not None:
            return True
    return False


def _alias_spec(name: str, target: str) -> ModuleSpec:
    from importlib.machinery import ModuleSpec

    return ModuleSpec(name, _AliasLoader(target), origin=f"alias of {target}")


def _submodule_spec(name: str, target: str) -> ModuleSpec | None:
    """The alias spec for ``tensorrt.<sub>`` where ``tensorrt_rtx.<sub>`` exists, else None (the usual error)."""
    import importlib.util

    return None if importlib.util.find_spec(target) is None else _alias_spec(name, target)


def _aliases_target(module: object) -> bool:
    """Whether ``module`` (``sys.modules["tensorrt"]``) is ``tensorrt_rtx`` or Torch-TensorRT's proxy of it."""
    target = sys.modules.get(TARGET)
    return target is not None and (module is target or getattr(module, "_target_module", None) is target)


def install() -> TensorRTAlias:
    """Put the finder first on ``sys.meta_path``, once per process; return it. Imports nothing."""
    for finder in sys.meta_path:
        if isinstance(finder, TensorRTAlias):
            return finder
    finder = TensorRTAlias()
    sys.meta_path.insert(0, finder)
    return finder


def install_at_startup() -> None:
    """What the ``.pth`` file runs at interpreter start: :func:`install` unless disabled; never raises."""
    try:
        if os.environ.get(DISABLE_VARIABLE, "1") != "0":
            install()
    except Exception:  # interpreter start-up must go on; `import tensorrt` then fails as it did without the hook
        pass


def ensure_tensorrt() -> None:
    """Install the finder and import ``tensorrt`` now (``aitune_trt_aot`` does this before importing ``aitune.torch``).

    A ``tensorrt`` that is installed but does not import (NVIDIA's stub package without its libraries) is replaced
    by TensorRT-RTX where that is installed, as before the finder existed. Where neither is installed nothing
    happens, and ``import aitune.torch`` fails with ``No module named 'tensorrt'``.
    """
    import importlib

    finder = install()
    if ALIAS in sys.modules:
        return
    try:
        importlib.import_module(ALIAS)
    except ImportError:
        sys.modules.pop(ALIAS, None)
        if _found_by_other_finders(TARGET, finder):
            sys.modules[ALIAS] = importlib.import_module(TARGET)
