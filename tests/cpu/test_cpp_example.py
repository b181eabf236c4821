"""CPU: the C++ example's helper (``examples/cpp_example.py``): what it reads and what it runs.

Its output parser, its command line, a machine without cmake, and the benchmark's C++ rows where the example cannot be
built. The example itself runs on the GPU host only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from examples import cpp_example

# What examples/cpp/inference.cpp prints, in the order it prints it (with --cuda-graphs --time 100).
OUTPUT = """\
cuda graphs: on; kernel strategy 1 given to 1 engine(s)
batch 1 call 1: output [1, 512] max abs error vs expected 3.1e-05
batch 1 call 2: output [1, 512] max abs error vs expected 4.5e-05
batch 1 call 3: output [1, 512] max abs error vs expected 2e-05
batch 1: median 0.061 ms per call over 100 calls (cuda graphs)
batch 8 call 1: output [8, 512] max abs error vs expected 6.1e-05
batch 8 call 2: output [8, 512] max abs error vs expected 6.1e-05
batch 8 call 3: output [8, 512] max abs error vs expected 6.1e-05
batch 8: median 0.0735 ms per call over 100 calls (cuda graphs)
cuda graphs captured: 2
batch 9: refused: input 0: size 9 on axis 0, compiled for 1..8
"""


def test_a_run_with_graphs_and_timing_is_read_per_batch() -> None:
    """Errors (worst of the calls), medians, the kernel strategy given, the engines and the graphs captured."""
    report = cpp_example.parse(OUTPUT)
    assert report.errors == {1: 4.5e-05, 8: 6.1e-05}
    assert report.median_ms == {1: 0.061, 8: 0.0735}
    assert report.cuda_graphs and report.kernel_strategy == 1 and report.engines == 1 and report.graphs_captured == 2


def test_a_plain_run_reports_no_graphs() -> None:
    """Without --cuda-graphs and --time: errors only."""
    plain = "\n".join(line for line in OUTPUT.splitlines() if "cuda graphs" not in line)
    report = cpp_example.parse(plain)
    assert report.errors == {1: 4.5e-05, 8: 6.1e-05} and report.median_ms == {}
    assert not report.cuda_graphs and report.kernel_strategy is None and report.graphs_captured == 0
    timed = OUTPUT.replace("(cuda graphs)", "(no cuda graphs)").splitlines()[1:-2]
    assert not cpp_example.parse("\n".join(timed)).cuda_graphs


def test_the_command_line_adds_the_options_asked_for() -> None:
    """Binary, package, cases, then --cuda-graphs and --time N only where asked."""
    binary, package, cases = Path("/b/inference"), Path("/m.pt2"), Path("/c.pt")
    assert cpp_example.command(binary, package, cases) == ["/b/inference", "/m.pt2", "/c.pt"]
    assert cpp_example.command(binary, package, cases, cuda_graphs=True, timed_calls=50)[3:] == [
        "--cuda-graphs",
        "--time",
        "50",
    ]


def test_a_machine_without_cmake_is_told_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No cmake: ToolMissingError, which the GPU tests turn into a skip and the benchmark into a row's note."""
    monkeypatch.setattr(cpp_example.shutil, "which", lambda name: None)
    with pytest.raises(cpp_example.ToolMissingError, match="cmake"):
        cpp_example.build(tmp_path / "build")


def test_the_benchmark_notes_an_example_it_could_not_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``cpp-pt2`` where the example cannot be built: one row saying why, the cases file still written."""
    from benchmarks.run import CPP_LABELS, cpp_rows

    def missing(build_dir: Path) -> Path:
        raise cpp_example.ToolMissingError("the C++ example needs cmake and a C++ compiler (c++)")

    monkeypatch.setattr(cpp_example, "build", missing)
    inputs = {1: (torch.zeros(1, 4),), 8: (torch.zeros(8, 4),)}
    expected = {b: torch.zeros(b, 2) for b in inputs}
    [row] = cpp_rows("mlp", tmp_path / "m.pt2", inputs, expected, tmp_path, size=10)
    assert row.contender == CPP_LABELS[False] and row.note.startswith("not built: the C++ example needs cmake")
    assert (tmp_path / "mlp-cpp-cases.pt").is_file()
