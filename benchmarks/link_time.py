"""The package library's link as AOTInductor writes it against the link against stubs (issue 28: tune time).

    python -m benchmarks.link_time [--rounds 5] [--device cpu|cuda]

Compiles one small package (an MLP, dynamic batch; on ``--device cuda`` its graph is Inductor's own GPU code, not
engines) with the link kept aside, then runs that link, as written and against ``pt2/link_stubs.py``'s stubs, in
turn, ``--rounds`` times each (the stubs built once before, as a machine's later links find them). Prints a table of
seconds and the libraries each link named.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from aitune_trt_aot.pt2.link_stubs import stubbed_command
from aitune_trt_aot.pt2.object_reuse import link_target


def captured_link(device: str, folder: Path) -> tuple[list[str], str]:
    """Compile a small package and return its library's link command (objects copied to ``folder``) and folder."""
    from torch._inductor import cpp_builder

    kept: list[tuple[list[str], str]] = []
    run = cpp_builder._run_compile_cmd

    def keep(cmd_line: str, cwd: str) -> None:
        run(cmd_line, cwd)
        words = shlex.split(cmd_line)
        if link_target(words) is not None:
            copied = []
            for word in words:
                if word.endswith(".o"):
                    target = folder / Path(word).name
                    shutil.copy(Path(cwd) / word, target)
                    word = str(target)
                copied.append(word)
            copied[copied.index("-o") + 1] = str(folder / "linked.so")
            kept.append((copied, str(folder)))  # Inductor removes its build folder afterwards

    cpp_builder._run_compile_cmd = keep
    try:
        model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval().to(device)
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(model, (torch.randn(4, 16, device=device),), dynamic_shapes=({0: batch},))
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(folder / "m.pt2"), inductor_configs={"compile_threads": 1}
        )
    finally:
        cpp_builder._run_compile_cmd = run
    return kept[-1]


def timed(words: list[str], cwd: str) -> float:
    """Seconds one run of the command takes."""
    start = time.perf_counter()
    subprocess.run(words, cwd=cwd, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def main() -> int:
    """Capture the link, time both ways in turn, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="link-time-"))
    words, cwd = captured_link(args.device, folder)
    stubbed = stubbed_command(words, cwd, folder / "runtime")
    if stubbed is None:
        print("No library of this link is large enough for a stub: nothing to compare.", file=sys.stderr)
        return 1
    seconds: dict[str, list[float]] = {"as written": [], "against stubs": []}
    for _ in range(args.rounds):
        seconds["as written"].append(timed(words, cwd))
        seconds["against stubs"].append(timed(stubbed.command, cwd))
    libraries = " ".join(word for word in words if word.startswith("-l"))
    stubs = ", ".join(path.name for path in sorted(stubbed.folder.iterdir()) if path.is_dir())
    print(f"\n{platform.machine()}, {args.device} package; libraries: {libraries}; stubs of: {stubs}\n")
    print("| link | each run, s | median s |")
    print("|---|---|---|")
    for name, runs in seconds.items():
        print(f"| {name} | {', '.join(f'{value:.2f}' for value in runs)} | {statistics.median(runs):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
