"""Print where the libraries a ``.pt2`` package needs are installed, for build systems (examples/cpp)."""

from __future__ import annotations

import sys
from pathlib import Path

from aitune_trt_aot.errors import Pt2LoadError
from aitune_trt_aot.pt2.installed import runtime_library, tensorrt_library

_SYSTEM_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")


def _is_system_library_dir(folder: Path) -> bool:
    """``/usr/lib`` and the like, or their multiarch folder (``/usr/lib/x86_64-linux-gnu``): the loader's defaults."""
    posix = folder.as_posix()
    return posix in _SYSTEM_LIBRARY_DIRS or (
        folder.parent.as_posix() in _SYSTEM_LIBRARY_DIRS and folder.name.endswith("-linux-gnu")
    )


def loaded_library_dirs() -> list[Path]:
    """The folders of every shared library this process has loaded after ``import torch``, in load order.

    Python's torch finds the CUDA libraries of the pip wheels (cuBLAS, cuDNN, cuSPARSELt, NCCL, ...) wherever they
    are on ``sys.path`` and loads them itself; a C++ executable finds them only through its RPATH. These folders
    are what that RPATH needs (on the GPU host, ``libcusparseLt.so.0`` lay outside torch's own site folder).
    """
    import torch  # noqa: F401  (loads the libraries)

    folders: dict[Path, None] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = Path(line.split(maxsplit=5)[-1].strip())
            name = path.name
            # shared libraries (libcublas.so.13), not Python extension modules (_C.cpython-312-x86_64-linux-gnu.so)
            if path.is_absolute() and name.startswith("lib") and ".so" in name and "cpython" not in name:
                if not _is_system_library_dir(path.parent):  # found by the loader anyway
                    folders[path.parent] = None
    return list(folders)


def main(argv: list[str] | None = None) -> int:
    """``python -m aitune_trt_aot.pt2.paths --runtime-library | --tensorrt-library | --library-dirs``.

    Prints a library path, or (``--library-dirs``) the ``;``-separated folders of the libraries torch loads, for
    build systems (``examples/cpp/CMakeLists.txt``) that link the libraries a package needs.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--runtime-library", action="store_true", help="Torch-TensorRT's libtorchtrt_runtime.so")
    group.add_argument("--tensorrt-library", action="store_true", help="the TensorRT(-RTX) library")
    group.add_argument("--library-dirs", action="store_true", help="folders of the libraries torch loads")
    options = parser.parse_args(argv)
    if options.library_dirs:
        print(";".join(str(folder) for folder in loaded_library_dirs()))
        return 0
    try:
        found = runtime_library() if options.runtime_library else tensorrt_library()
    except Pt2LoadError as error:
        print(error, file=sys.stderr)
        return 1
    if found is None:
        print("No TensorRT pip package (tensorrt_rtx_libs / tensorrt_libs) is installed.", file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
