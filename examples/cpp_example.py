"""Build and run the C++ example (examples/cpp) on a GPU host, and read what it prints.

    python -m examples.cpp_example BUILD_DIR MODEL.pt2 CASES.pt [--cuda-graphs] [--time N]

Used by the GPU tests and the benchmark (``cpp-pt2`` rows); the command line builds the example into ``BUILD_DIR``
and runs it once. The build needs cmake, a C++ compiler and the installed LibTorch, Torch-TensorRT runtime library and
TensorRT library (``aitune_trt_aot.pt2.paths`` finds them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aitune_trt_aot.pt2.installed import runtime_library, tensorrt_library
from aitune_trt_aot.pt2.paths import loaded_library_dirs

SOURCE_DIR = Path(__file__).resolve().parent / "cpp"
_ERROR = re.compile(r"^batch (\d+) call \d+: output .* max abs error vs expected (\S+)$", re.MULTILINE)
_MEDIAN = re.compile(r"^batch (\d+): median (\S+) ms per call over \d+ calls \((cuda graphs|no cuda graphs)\)$", re.M)
_STRATEGY = re.compile(r"^cuda graphs: on; kernel strategy (\d+) given to (\d+) engine\(s\)$", re.MULTILINE)
_CAPTURED = re.compile(r"^cuda graphs captured: (\d+)$", re.MULTILINE)


class ToolMissingError(RuntimeError):
    """cmake or the C++ compiler is not installed: the example cannot be built here."""


class BuildFailedError(RuntimeError):
    """The example did not configure or build; the message ends with the tools' output."""


def build(build_dir: Path) -> Path:
    """Configure and build the example into ``build_dir``; return the ``inference`` executable."""
    compiler = (os.environ.get("CXX") or "c++").split()[0]  # the compiler CMake picks first
    if shutil.which("cmake") is None or shutil.which(compiler) is None:
        raise ToolMissingError(f"the C++ example needs cmake and a C++ compiler ({compiler})")
    configure = [
        "cmake",
        "-S",
        str(SOURCE_DIR),
        "-B",
        str(build_dir),
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DTORCHTRT_RUNTIME={runtime_library()}",
        f"-DTENSORRT_LIBRARY={tensorrt_library()}",
        f"-DEXTRA_LIBRARY_DIRS={';'.join(str(folder) for folder in loaded_library_dirs())}",
    ]
    for command in (configure, ["cmake", "--build", str(build_dir), "-j", "8"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            errors = [line for line in output.splitlines() if "error" in line.lower()]
            raise BuildFailedError(
                f"the C++ example does not build ({' '.join(command[:2])}): {errors[:5]}\n{output[-3000:]}"
            )
    return build_dir / "inference"


def command(binary: Path, package: Path, cases: Path, cuda_graphs: bool = False, timed_calls: int = 0) -> list[str]:
    """The example's command line for ``package`` and ``cases``."""
    words = [str(binary), str(package), str(cases)]
    if cuda_graphs:
        words.append("--cuda-graphs")
    if timed_calls:
        words += ["--time", str(timed_calls)]
    return words


@dataclass
class Report:
    """What one run of the example printed.

    Attributes:
        errors: Per batch size, the largest difference from the expected output over the calls at that size.
        median_ms: Per batch size, the median milliseconds per call (``--time``).
        cuda_graphs: Whether the calls ran through CUDA graphs.
        kernel_strategy: The kernel strategy given to the engines (TensorRT-RTX's value), None if none was given.
        engines: How many engines got it.
        graphs_captured: How many CUDA graphs were captured (0 without ``--cuda-graphs``).

    """

    errors: dict[int, float] = field(default_factory=dict)
    median_ms: dict[int, float] = field(default_factory=dict)
    cuda_graphs: bool = False
    kernel_strategy: int | None = None
    engines: int = 0
    graphs_captured: int = 0


def parse(stdout: str) -> Report:
    """Read a run's standard output into a :class:`Report`."""
    report = Report()
    for batch, error in _ERROR.findall(stdout):
        report.errors[int(batch)] = max(report.errors.get(int(batch), 0.0), float(error))
    for batch, milliseconds, mode in _MEDIAN.findall(stdout):
        report.median_ms[int(batch)] = float(milliseconds)
        report.cuda_graphs = mode == "cuda graphs"
    strategy = _STRATEGY.search(stdout)
    if strategy is not None:
        report.cuda_graphs = True
        report.kernel_strategy, report.engines = int(strategy.group(1)), int(strategy.group(2))
    captured = _CAPTURED.search(stdout)
    report.graphs_captured = 0 if captured is None else int(captured.group(1))
    return report


def main(argv: list[str]) -> int:
    """Build into ``argv[0]``, then run the example with the remaining arguments; return its exit status."""
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = build(Path(argv[0]))
    return subprocess.run([str(binary), *argv[1:]]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
