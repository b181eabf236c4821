"""What this machine has for running a ``.pt2``, read from installed files, and its TensorRT runtime, loaded.

A ``.pt2`` of TensorRT engines needs Torch-TensorRT's runtime library ``libtorchtrt_runtime.so`` (it registers the
``tensorrt::Engine`` class the engines are stored as) and the TensorRT (or TensorRT-RTX) library. The Python
``torch_tensorrt`` package is never imported here: versions come from the installed files and package metadata, and
the libraries are loaded directly (docs/pt2.md says what importing it would cost).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.compat import device_facts
from aitune_trt_aot.errors import Pt2LoadError

# The distribution that installs ``torch_tensorrt`` decides the flavour, as in Torch-TensorRT's own import.
_TORCH_TENSORRT_DISTRIBUTIONS = (("torch-tensorrt-rtx", "TensorRT-RTX"), ("torch-tensorrt", "TensorRT"))
# Per flavour: the packages whose __init__.py declares the version `tensorrt.__version__` reports (what packages
# record), then the distributions to ask when none does.
_TENSORRT_VERSION_SOURCES = {
    "TensorRT-RTX": (("tensorrt_rtx_bindings", "tensorrt_rtx"), ("tensorrt-rtx-cu13-libs", "tensorrt-rtx-cu13")),
    "TensorRT": (("tensorrt_bindings", "tensorrt"), ("tensorrt-cu13-libs", "tensorrt-cu13", "tensorrt")),
}
_DECLARED_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)

# TensorRT-RTX first (the only TensorRT installable on some hosts), then standard TensorRT 10.
_TENSORRT_LIBRARIES = (("tensorrt_rtx_libs", "libtensorrt_rtx.so"), ("tensorrt_libs", "libnvinfer.so"))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # finds without importing
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed_package_dir(name: str) -> Path | None:
    try:
        return _package_dir(name)
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return None


def _declared_version(package: str, filename: str = "__init__.py") -> str | None:
    """The ``__version__ = "..."`` literal in ``package/filename``, read as text (the package is not imported)."""
    folder = _installed_package_dir(package)
    try:
        text = None if folder is None else (folder / filename).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = None if text is None else _DECLARED_VERSION.search(text)
    return None if found is None else found.group(1)


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_torch_tensorrt() -> tuple[str | None, str | None]:
    """``(flavour, version)`` of the installed Torch-TensorRT, from its files; ``(None, None)`` when none is."""
    if _installed_package_dir("torch_tensorrt") is None:
        return None, None
    declared = _declared_version("torch_tensorrt", "_version.py")  # what torch_tensorrt.__version__ gives
    for distribution, flavour in _TORCH_TENSORRT_DISTRIBUTIONS:
        version = _distribution_version(distribution)
        if version is not None:
            return flavour, declared or version
    return None, declared


def _installed_tensorrt(flavour: str) -> str | None:
    """The installed TensorRT(-RTX) version of ``flavour`` as ``tensorrt.__version__`` gives it, None if unknown."""
    packages, distributions = _TENSORRT_VERSION_SOURCES[flavour]
    for package in packages:
        version = _declared_version(package)
        if version is not None:
            return version
    for distribution in distributions:
        version = _distribution_version(distribution)
        if version is not None:
            return version
    return None


def installed_environment(device: torch.device | None = None) -> dict[str, Any]:
    """The facts of this machine as ``compat.build_environment`` records them, without importing Torch-TensorRT.

    The GPU comes from torch (None without CUDA); Torch-TensorRT's flavour and version and TensorRT's version
    from installed files and package metadata. A fact not found is None, and None facts are not compared.
    """
    flavour, torch_tensorrt = installed_torch_tensorrt()
    return {
        **device_facts(device),
        "tensorrt_flavour": flavour,
        "tensorrt": None if flavour is None else _installed_tensorrt(flavour),
        "torch_tensorrt": torch_tensorrt,
        "torch": torch.__version__,
    }


def _engine_class_registered() -> bool:
    try:
        torch.classes.tensorrt.Engine  # noqa: B018 - the lookup is the check
    except (RuntimeError, AttributeError):
        return False
    return True


def runtime_library() -> Path:
    """Torch-TensorRT's runtime library (``torch_tensorrt/lib/libtorchtrt_runtime.so``), found without importing it."""
    torch_tensorrt_dir = _package_dir("torch_tensorrt")
    runtime = None if torch_tensorrt_dir is None else torch_tensorrt_dir / "lib" / "libtorchtrt_runtime.so"
    if runtime is None or not runtime.is_file():
        raise Pt2LoadError(
            "Running this .pt2 needs Torch-TensorRT's runtime library (torch_tensorrt/lib/libtorchtrt_runtime.so), "
            "which holds the TensorRT engine class. Install the torch-tensorrt (or torch-tensorrt-rtx) wheel that "
            "matches your torch; it is loaded without importing torch_tensorrt."
        )
    return runtime


def tensorrt_library() -> Path | None:
    """The TensorRT library of the installed TensorRT(-RTX) pip package, None when none is installed."""
    for package, stem in _TENSORRT_LIBRARIES:
        folder = _package_dir(package)
        if folder is not None:
            found = sorted(folder.glob(f"{stem}*"))
            if found:
                return found[0]
    return None


def share_cxx_runtime() -> None:
    """Put the process's C++ standard library into the global symbol scope before a package is opened.

    AOTInductor links its generated ``wrapper.so`` with a static copy of libstdc++ whose symbols it exports.
    Opened while the shared libstdc++ is not global (a process that imported torch and torch_tensorrt, but
    nothing that loads a library with ``RTLD_GLOBAL``), the wrapper binds most std:: symbols to its own copy
    and the rest to the shared one; the two copies' locale facets then disagree and the model's constructor
    crashes (``parse_device_str`` -> ``std::regex``; this is the segfault after ``import torch_tensorrt``).
    With the shared library global, every std:: symbol resolves to it. docs/pt2.md has the evidence.
    """
    ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)


def load_tensorrt_runtime() -> None:
    """Make ``torch.classes.tensorrt.Engine`` available by loading Torch-TensorRT's runtime library.

    Does nothing when the class is already registered (``torch_tensorrt`` imported, or an earlier call).
    The TensorRT library is loaded first, globally, from its pip package when one is installed (the runtime
    library does not carry its path); otherwise it must be on the loader's path (``LD_LIBRARY_PATH``).
    """
    if _engine_class_registered():
        return
    runtime = runtime_library()
    tensorrt = tensorrt_library()
    try:
        if tensorrt is not None:
            ctypes.CDLL(str(tensorrt), mode=ctypes.RTLD_GLOBAL)
        torch.ops.load_library(str(runtime))
    except OSError as error:
        raise Pt2LoadError(
            f"Could not load Torch-TensorRT's runtime library {runtime}: {error}. Install the TensorRT library it "
            "was built against (tensorrt-rtx-cu13-libs for TensorRT-RTX builds, tensorrt-cu13-libs otherwise) or "
            "put it on LD_LIBRARY_PATH."
        ) from error
