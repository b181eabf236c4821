"""What a process's first ``.pt2`` package compile spends outside the C++ compiler, on the CPU (issue 28: tune time).

    python -m benchmarks.package_setup [--rounds 3]

Each run is a fresh Python process that compiles one small package (a CPU MLP, dynamic batch, the package compile's
own configs, ``formats/aot_inductor.PACKAGE_COMPILE_CONFIGS``) and times ``aoti_compile_and_package`` less its C++
commands: Inductor's lowering and code generation, with whatever it sets up once per process. The runs alternate
between the package compile as the backend runs it (Inductor's joint-graph pattern set-up skipped,
``without_joint_pattern_setup``) and with that set-up left in, ``--rounds`` each. Prints a table (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import contextlib, json, sys, tempfile, time
import torch
from torch._inductor import cpp_builder
from aitune_trt_aot.formats.aot_inductor import PACKAGE_COMPILE_CONFIGS, without_joint_pattern_setup

spent = [0.0]
run = cpp_builder._run_compile_cmd

def timed(cmd_line, cwd):
    start = time.perf_counter()
    try:
        return run(cmd_line, cwd)
    finally:
        spent[0] += time.perf_counter() - start

cpp_builder._run_compile_cmd = timed
model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
batch = torch.export.Dim("batch", min=1, max=64)
program = torch.export.export(model, (torch.randn(4, 16),), dynamic_shapes=({0: batch},))
skip = without_joint_pattern_setup() if sys.argv[1] == "skipped" else contextlib.nullcontext()
start = time.perf_counter()
with skip:
    torch._inductor.aoti_compile_and_package(
        program, package_path=tempfile.mktemp(suffix=".pt2"), inductor_configs=dict(PACKAGE_COMPILE_CONFIGS)
    )
total = time.perf_counter() - start
print(json.dumps({"total": total, "commands": spent[0]}))
"""

MODES = ("skipped", "left in")


def one_run(mode: str, cache: str) -> dict[str, float]:
    """One fresh process's package compile in ``mode``; its total and C++ command seconds."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
        timeout=600,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run the alternating rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="package-setup-")
    one_run(MODES[0], cache)  # Inductor's precompiled header, built once per cache folder: not what is timed
    outside: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            seconds = one_run(mode, cache)
            outside[mode].append(seconds["total"] - seconds["commands"])
    print(f"\n{platform.processor() or platform.machine()}, {args.rounds} fresh processes each, alternating\n")
    print("| joint-graph pattern set-up | package compile outside the C++ commands, s (each run) | median |")
    print("|---|---|---|")
    for mode in MODES:
        runs = ", ".join(f"{value:.2f}" for value in outside[mode])
        print(f"| {mode} | {runs} | {statistics.median(outside[mode]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
