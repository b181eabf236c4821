"""Where an ``aot_inductor`` (``.pt2``) tune spends its time, next to an ``exported_program`` tune (issue 28).

    python -m benchmarks.pt2_tune_profile [--models mlp resnet50] [--rounds 2] [--cprofile]

For each model and round: an ``exported_program`` tune and an ``aot_inductor`` tune of the same model, each a real
build (an empty build-cache folder per tune), then the ``aot_inductor`` tune once more on the same cache folder (what
a second tune of an unchanged model costs). Each round draws new weights for the same architecture (round N: seed
N - 1). Round 1 also pays what a process and a machine pay once (Inductor's first import, its precompiled header,
the first compile of the package's C++, which later rounds reuse where the code is the same: ``pt2/object_reuse.py``,
listed in the "reused" column). Inside the package compile (the ``artifact_save`` step) it times:

- ``export``: ``torch.export`` of the engines' graph (the save step minus ``aoti_compile_and_package``);
- ``codegen``: Inductor's lowering and code generation (``aot_compile`` minus the C++ commands);
- one entry per C++ command (compile or link, named by what it writes, "(lighter headers)" for a model's half
  compiled against ``pt2/lean_headers.py``'s, "(stubs)" for a link against ``pt2/link_stubs.py``'s), from
  ``cpp_builder``; their total counts time when two ran side by side once (the wrapper's runtime and its model's
  half, ``pt2/wrapper_split.py``);
- ``package``: zipping the files into the ``.pt2``.

Beside the save: the kernels a twin of the engines compiled meanwhile (``pipeline/early_kernels.py``), then the
self-check and the part of it spent in first calls (short where the twin compiled their kernels).

Prints a markdown table (seconds), then whether the lighter headers or a link against stubs failed on this machine,
and why; ``--cprofile`` adds a cProfile (cumulative) of the last ``aot_inductor`` tune.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import aitune_trt_aot  # noqa: F401  (registers the backend, makes `tensorrt` importable)
from aitune_trt_aot.pt2.compiler import FAILED
from aitune_trt_aot.pt2.lean_headers import LEAN_PREFIX
from aitune_trt_aot.pt2.link_stubs import STUBS_FOLDER
from aitune_trt_aot.pt2.wrapper_split import RUNTIME_FOLDER
from benchmarks.run import tune_aitune

BATCHES = [1, 8, 32]


class PackageTimer:
    """Times the parts of AOTInductor's package compile by wrapping the functions that do them, while active."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        self.seconds: dict[str, float] = {}
        self.commands: list[tuple[str, float]] = []
        self._spans: list[tuple[float, float]] = []  # (start, end) of each command: some run side by side
        self.reused: list[str] = []  # objects the package compile put back instead of compiling (pt2.object_reuse)

    def _add(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def _timed(self, key: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._add(key, time.perf_counter() - start)

        return timed

    def _timed_command(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(cmd_line: str, cwd: str) -> Any:
            start = time.perf_counter()
            try:
                return function(cmd_line, cwd)
            finally:
                words = shlex.split(cmd_line)
                target = words[words.index("-o") + 1] if "-o" in words else words[-1]
                end = time.perf_counter()
                self.commands.append((_command_label(Path(target).name) + _how(words), end - start))
                self._spans.append((start, end))

        return timed

    def _recorded_reuse(self, reused_objects: Callable[..., Any]) -> Callable[..., Any]:
        @contextmanager
        def recorded(*args: Any, **kwargs: Any) -> Iterator[list[str]]:
            with reused_objects(*args, **kwargs) as reused:
                yield reused
            self.reused.extend(reused)

        return recorded

    @contextmanager
    def active(self) -> Iterator[None]:
        """Wrap the save step, ``aoti_compile_and_package``, ``aot_compile``, the C++ commands and the packaging."""
        import torch._inductor as inductor
        import torch._inductor.package as package
        from torch._inductor import cpp_builder

        from aitune_trt_aot.formats import aot_inductor

        originals = [
            (aot_inductor.AotInductorFormat, "save"),
            (inductor, "aoti_compile_and_package"),
            (inductor, "aot_compile"),
            (package, "package_aoti"),
            (cpp_builder, "_run_compile_cmd"),
            (aot_inductor, "reused_objects"),
        ]
        saved = [getattr(owner, name) for owner, name in originals]
        aot_inductor.AotInductorFormat.save = self._timed("save", saved[0])
        inductor.aoti_compile_and_package = self._timed("aoti_compile_and_package", saved[1])
        inductor.aot_compile = self._timed("aot_compile", saved[2])
        package.package_aoti = self._timed("package", saved[3])
        cpp_builder._run_compile_cmd = self._timed_command(saved[4])
        aot_inductor.reused_objects = self._recorded_reuse(saved[5])
        try:
            yield
        finally:
            for (owner, name), original in zip(originals, saved, strict=True):
                setattr(owner, name, original)

    def parts(self) -> dict[str, float]:
        """``export``, ``codegen``, ``c++ commands`` and ``package`` seconds (what was not measured is left out)."""
        s = self.seconds
        commands = _covered(self._spans)
        parts = {"c++ commands": commands, "package": s.get("package", 0.0)}
        if "save" in s and "aoti_compile_and_package" in s:
            parts["export"] = s["save"] - s["aoti_compile_and_package"]
        if "aot_compile" in s:
            parts["codegen"] = s["aot_compile"] - commands
        return parts


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of ``spans`` ran (the wrapper's runtime compiles beside its model's half)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def _command_label(name: str) -> str:
    """A readable name for what a C++ command wrote (``pt2.wrapper_split`` writes through temporary names)."""
    if len(name.lstrip(".").split(".")[0]) == 64:  # a SHA-256 name: the wrapper's shared runtime (wrapper_split)
        return "wrapper runtime"
    if ".tmp" in name and ".wrapper." in name:
        return "wrapper.o (join)"
    return name.lstrip(".").split(".", 1)[-1] if name.count(".") > 1 else name


def _how(words: list[str]) -> str:
    """How a command ran, where the package compile changed it: lighter headers for a model's half, a stub link."""
    if any(word.startswith("-I") and f"{RUNTIME_FOLDER}/{LEAN_PREFIX}" in word for word in words):
        return " (lighter headers)"
    if any(word.startswith("-L") and f"{RUNTIME_FOLDER}/{STUBS_FOLDER}" in word for word in words):
        return " (stubs)"
    return ""


def remembered_failures() -> list[str]:
    """What this machine's package compiles remember failed (the lighter headers' builds, stub links), and why."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    folder = Path(cache_dir()) / RUNTIME_FOLDER
    found = [("lighter headers", path) for path in sorted(folder.glob(f"{LEAN_PREFIX}*/{FAILED}"))]
    found += [("link stubs", path) for path in sorted(folder.glob(f"{STUBS_FOLDER}/*/{FAILED}"))]
    return [f"{what} ({path.parent.name}): {path.read_text().strip() or 'no reason recorded'}" for what, path in found]


def _early(steps: dict[str, float], shapes: list) -> str:
    """The kernels a twin of the engines compiled during the save (``pipeline.early_kernels``): seconds, shapes."""
    if "early_kernels" not in steps:
        return "-"
    return f"{steps['early_kernels']:.2f} ({len(shapes)} shapes)"


def one_tune(
    model_name: str, output_format: str, cache: str, out: Path, timer: PackageTimer | None, seed: int = 0
) -> dict:
    """Tune ``model_name`` (weights from ``seed``) once with ``output_format`` on build cache ``cache``; its steps."""
    from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig

    os.environ["AITUNE_TRT_AOT_CACHE_DIR"] = cache
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(output_format=output_format))
    if timer is None:
        tuned, seconds = tune_aitune(model_name, backend, BATCHES, out, output_format, save=False, seed=seed)
    else:
        with timer.active():
            tuned, seconds = tune_aitune(model_name, backend, BATCHES, out, output_format, save=False, seed=seed)
    [built] = list(tuned._self_wrapper.backends.values())
    result = {
        "tune": seconds,
        "steps": built.build_seconds,
        "from_cache": built.built_from_cache,
        "early": built.early_kernel_shapes,
        "early_problem": next(
            (r["early_kernels_problem"] for r in built._build_results if "early_kernels_problem" in r), None
        ),
    }
    if timer is not None:
        result["package"] = timer.parts()
        result["commands"] = list(timer.commands)
        result["reused"] = list(timer.reused)
    del tuned, built
    torch.cuda.empty_cache()
    return result


def main() -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "resnet50"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("ERROR: the profile needs an NVIDIA GPU (torch.cuda.is_available() is False).", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp(prefix="pt2-profile-"))
    lines = [
        "| model | round | exported_program tune s | aot_inductor tune s | ratio | package compile (save) s | export "
        "| codegen | C++ commands (each) | reused | package | kernels during the save (first calls) "
        "| self-check (its first calls) | second aot_inductor tune s (cache) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    problems: list[str] = []
    for model_name in args.models:
        for round_number in range(1, args.rounds + 1):
            seed = round_number - 1
            exported = one_tune(model_name, "exported_program", tempfile.mkdtemp(dir=out), out, None, seed)
            cache = tempfile.mkdtemp(dir=out)
            profiler = cProfile.Profile() if args.cprofile and round_number == args.rounds else None
            if profiler is not None:
                profiler.enable()
            packaged = one_tune(model_name, "aot_inductor", cache, out, PackageTimer(), seed)
            if profiler is not None:
                profiler.disable()
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
                print(f"\n### cProfile: {model_name} aot_inductor tune, round {round_number}\n{text.getvalue()}")
            again = one_tune(model_name, "aot_inductor", cache, out, None, seed)
            parts, steps = packaged["package"], packaged["steps"]
            each = ", ".join(f"{name} {seconds:.2f}" for name, seconds in packaged["commands"])
            reuse = f"{again['tune']:.1f}" + ("" if again["from_cache"] else " (not from the cache)")
            lines.append(
                f"| {model_name} | {round_number} | {exported['tune']:.1f} | {packaged['tune']:.1f} "
                f"| {packaged['tune'] / exported['tune']:.1f}x | {packaged['steps'].get('artifact_save', 0):.2f} "
                f"| {parts.get('export', 0):.2f} | {parts.get('codegen', 0):.2f} "
                f"| {parts['c++ commands']:.2f} ({each}) | {', '.join(packaged['reused']) or '-'} "
                f"| {parts['package']:.2f} | {_early(packaged['steps'], packaged['early'])} "
                f"| {steps.get('self_check', 0):.2f} ({steps.get('first_calls', 0):.2f}) | {reuse} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
            if packaged["early_problem"]:
                problems.append(f"{model_name}, round {round_number}: {packaged['early_problem']}")
    print(f"\n{torch.cuda.get_device_name()}\n")
    print("\n".join(lines))
    if problems:
        print("\nNo kernels compiled during the save: " + "; ".join(problems))
    failures = remembered_failures()
    print("\nFailed on this machine (later builds skip them): " + ("; ".join(failures) if failures else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
