"""Print where the libraries a ``.pt2`` package needs are installed, for build systems (examples/cpp)."""

from __future__ import annotations

import sys

from aitune_trt_aot.errors import Pt2LoadError
from aitune_trt_aot.pt2.runtime import runtime_library, tensorrt_library


def main(argv: list[str] | None = None) -> int:
    """``python -m aitune_trt_aot.pt2.paths --runtime-library | --tensorrt-library``: print a library path.

    For build systems (``examples/cpp/CMakeLists.txt``) that link the libraries a package needs.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--runtime-library", action="store_true", help="Torch-TensorRT's libtorchtrt_runtime.so")
    group.add_argument("--tensorrt-library", action="store_true", help="the TensorRT(-RTX) library")
    options = parser.parse_args(argv)
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
