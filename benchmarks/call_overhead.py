"""The Python a loaded ``.pt2`` call runs around its engines, timed on the CPU (issue 28: ``load_pt2`` per call).

    python -m benchmarks.call_overhead [--calls 20000] [--rounds 7]

On the small benchmark models a call is host work: the GPU host's raw runners replay a CUDA graph in 0.056-0.077 ms,
and ``load_pt2`` took 0.109-0.159 ms (docs/benchmark.md, 2026-12-08). This times, with CPU tensors and no GPU, the
Python steps of a ``load_pt2`` call under CUDA graphs, each next to the pytree call it replaces on the common call
(positional plain tensors in, a flat list of tensors out):

- collecting the input tensors: ``Pt2Model.__call__``'s direct path against ``pytree.tree_leaves``;
- copying a replay's outputs: ``cuda_graphs.cloned`` against ``pytree.tree_map_only``;
- the whole ``Pt2Model.__call__`` (input check included) around a runner that returns at once.

Each figure is the median over ``--rounds`` of the mean of ``--calls`` calls, in microseconds. Prints a table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot.cuda_graphs import cloned, plain_tensors
from aitune_trt_aot.pt2.runtime import Pt2Model
from aitune_trt_aot.ranges import InputRange


class _Loader:
    """What ``Pt2Model`` reads from AOTInductor's loader, for a package traced as ``f(x) -> y``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._in_spec = pytree.treespec_dumps(pytree.tree_flatten(((x,), {}))[1])
        self._out_spec = pytree.treespec_dumps(pytree.tree_flatten(y)[1])

    def get_call_spec(self) -> list[str]:
        return [self._in_spec, self._out_spec]

    def get_metadata(self) -> dict[str, str]:
        return {}


def microseconds(call: Callable[[], Any], calls: int, rounds: int) -> float:
    """The median over ``rounds`` of the mean time of ``calls`` calls of ``call``, in microseconds."""
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        means.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(means)


def main() -> int:
    """Time each step and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    x, y = torch.randn(1, 64), torch.randn(1, 10)
    model = Pt2Model(_Loader(x, y), Path("mlp.pt2"), torch.device("cpu"))
    model.inputs = [InputRange(None, "tensor 0", (1, 64), None, (32, 64), torch.float32)]
    model._run = lambda *tensors: cloned([y])  # a replay that costs nothing but its copy-out

    def time_it(call: Callable[[], Any]) -> str:
        return f"{microseconds(call, args.calls, args.rounds):.1f}"

    rows = [
        (
            "collect the input tensors (one)",
            time_it(lambda: list((x,)) if plain_tensors((x,), {}) else None),
            time_it(lambda: [leaf for leaf in pytree.tree_leaves(((x,), {})) if isinstance(leaf, torch.Tensor)]),
        ),
        (
            "copy a replay's outputs (a list of one tensor)",
            time_it(lambda: cloned([y])),
            time_it(lambda: pytree.tree_map_only(torch.Tensor, torch.Tensor.clone, [y])),
        ),
        ("the whole Pt2Model call around that replay", time_it(lambda: model(x)), ""),
    ]
    print(f"\nCPU: {platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    print("| step | this package's path, us | pytree's, us |\n|---|---|---|")
    for step, ours, theirs in rows:
        print(f"| {step} | {ours} | {theirs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
