"""Side-by-side GPU benchmark: eager, torch.compile, bare Torch-TensorRT, AITune's built-in backend and this one.

    python -m benchmarks.run [--models mlp two_inputs resnet50 encoder] [--batches 1 8 32] [--out bench-out]
    python -m benchmarks.run --merge bench-out/mlp bench-out/resnet50 --out bench-out   # one table of several runs

Prints a markdown table (latency with the cosine similarity of each contender's outputs to eager fp32 beside it),
then this backend's tune time by build step (quantization and calibration included), and writes ``table.md``,
``results.json`` and ``chart.png`` (if matplotlib is installed) to ``--out``. Every contender is called the way users
call it (AITune contenders through the tuned ``ait.Module``); the "raw" rows call this backend's loaded artifact
directly, as the floor, the "load_pt2" row the ``.pt2`` package as a deployment loads it, and the "C++ example"
rows (contender ``cpp-pt2``) the same package from examples/cpp, with and without CUDA graphs. Each call is timed once
when its contender is ready, then again in ``RETIME_ROUNDS`` rounds with every contender in turn, and a row
keeps the median of its timings (``retime_in_turn``), so that drift of the host does not fall on one contender. Load
seconds are measured by ``ait.load`` in one fresh process per model, followed by the first call at each batch size
(worst and median in the table). Ratios are what to compare: absolute times vary between machines. 8-bit contenders
of this backend run each in a benchmark process of their own when others share the run (``own_process_contenders``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from unittest import mock

import torch
from torch import nn

import aitune_trt_aot  # noqa: F401  (registers the backend, makes `tensorrt` importable)
from aitune_trt_aot.quantization import is_quantized
from aitune_trt_aot.validation import accuracy_metrics
from tests.support.models import WideMLP

FEATURES, SEQ, D_MODEL = 512, 64, 512
# This backend's variants: key (checkpoint name suffix) -> (table label, precision, config fields).
OURS = {
    "ours-default": ("aitune_trt_aot default (fp32, CUDA graphs auto)", "fp32", {}),
    "ours-fp32-nographs": ("aitune_trt_aot fp32 cuda_graphs=False", "fp32", {"cuda_graphs": False}),
    # The same two builds with the check for failed engine calls switched off (AITUNE_TRT_AOT_WATCH_ENGINE_ERRORS=0
    # while they tune and load): what that check costs per call, side by side (issue 29).
    "ours-default-unchecked": ("aitune_trt_aot default, engine-error check off", "fp32", {}),
    "ours-fp32-nographs-unchecked": (
        "aitune_trt_aot fp32 cuda_graphs=False, engine-error check off",
        "fp32",
        {"cuda_graphs": False},
    ),
    "ours-fp16": ("aitune_trt_aot fp16 (CUDA graphs auto)", "fp16", {}),
    "ours-pt2-fp32": ("aitune_trt_aot fp32 .pt2 (aot_inductor)", "fp32", {"output_format": "aot_inductor"}),
    "ours-int8": ("aitune_trt_aot int8 (rest fp16, CUDA graphs auto)", "int8", {}),
    "ours-fp8": ("aitune_trt_aot fp8 (rest fp16, CUDA graphs auto)", "fp8", {}),
    # The first-call trade-off (issue 28): TensorRT-RTX's shape-generic kernels only, no kernel compile per new shape.
    "ours-nospec": ("aitune_trt_aot fp32, kernel_specialization='none'", "fp32", {"kernel_specialization": "none"}),
    # The load-time / first-call trade-off (README, "First call after a load"): the same builds, served by the build
    # cache (warm_up does not change what is built), loaded with every recorded shape warmed.
    "ours-warm": ("aitune_trt_aot default, warm_up=True", "fp32", {"warm_up": True}),
    "ours-pt2-warm": (
        "aitune_trt_aot fp32 .pt2 (aot_inductor), warm_up=True",
        "fp32",
        {"output_format": "aot_inductor", "warm_up": True},
    ),
}
# Recorded calls AITune keeps per graph while the quantized contenders tune (its default, 1, is what they calibrate on).
CALIBRATION_CALLS = 32
# Contenders tuned through AITune and saved as .ait: key (checkpoint name suffix) -> table label.
AITUNE_LABELS = {key: label for key, (label, _, _) in OURS.items()} | {"builtin": "AITune built-in fp32"}
# Variants whose loaded artifact is also timed directly, without AITune: the floor for the per-call overhead.
RAW_FLOORS = ("ours-default", "ours-fp32-nographs", "ours-pt2-fp32")
# The C++ example (examples/cpp) on the ``ours-pt2-fp32`` package, contender ``cpp-pt2``: label per CUDA-graph mode.
CPP_LABELS = {False: "C++ example: fp32 .pt2, no CUDA graphs", True: "C++ example: fp32 .pt2, CUDA graphs"}
CPP_TIMED_CALLS = 100


def engine_error_check(contender: str) -> contextlib.AbstractContextManager:
    """Switch the engine-error check off while an ``-unchecked`` contender tunes (its runner is wrapped then)."""
    from aitune_trt_aot.engine_errors import WATCH_ENV

    if not contender.endswith("-unchecked"):
        return contextlib.nullcontext()
    return mock.patch.dict(os.environ, {WATCH_ENV: "0"})


class TwoInputs(nn.Module):
    """Two tensors sharing the batch axis, mixed by two small MLPs."""

    def __init__(self) -> None:
        """Build the layers."""
        super().__init__()
        self.left = nn.Sequential(nn.Linear(FEATURES, FEATURES), nn.GELU(), nn.Linear(FEATURES, FEATURES))
        self.right = nn.Sequential(nn.Linear(FEATURES // 2, FEATURES), nn.GELU(), nn.Linear(FEATURES, FEATURES))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mix ``x`` (batch, 512) and ``y`` (batch, 256)."""
        return torch.relu(self.left(x) + self.right(y))


def build(name: str, seed: int = 0) -> tuple[nn.Module, Callable[[int], tuple[torch.Tensor, ...]]]:
    """A model with random weights (drawn from ``seed``) and a function making its inputs for a batch size."""
    torch.manual_seed(seed)
    if name == "mlp":  # the same model as the GPU tests' wide_mlp case
        return WideMLP(FEATURES, layers=6).eval(), lambda b: (torch.randn(b, FEATURES, device="cuda"),)
    if name == "two_inputs":
        return TwoInputs().eval(), lambda b: (
            torch.randn(b, FEATURES, device="cuda"),
            torch.randn(b, FEATURES // 2, device="cuda"),
        )
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None).eval(), lambda b: (torch.randn(b, 3, 224, 224, device="cuda"),)
    if name == "encoder":
        layer = nn.TransformerEncoderLayer(D_MODEL, 8, 4 * D_MODEL, batch_first=True, dropout=0.0)
        model = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False).eval()
        return model, lambda b: (torch.randn(b, SEQ, D_MODEL, device="cuda"),)
    raise ValueError(f"unknown model {name!r}")


@dataclass
class Row:
    """One model x contender x batch size."""

    model: str
    contender: str
    batch: int
    median_ms: float | None = None
    p90_ms: float | None = None
    throughput: float | None = None
    tune_s: float | None = None
    tune_steps: dict = field(default_factory=dict)  # this backend's build steps, seconds (backend.build_seconds)
    retune_s: float | None = None  # a second ait.tune of the unchanged model, served by the build cache
    artifact_bytes: int | None = None
    load_s: float | None = None
    first_call_s: float | None = None  # the first call (batch 1) after that load, in the same fresh process
    first_calls_s: list = field(default_factory=list)  # after that load, the first call at each benchmarked batch
    max_abs_err: float | None = None
    cosine: float | None = None  # of the output to eager fp32's (the 8-bit builds' self-check metric)
    note: str = ""
    ratios: dict = field(default_factory=dict)

    def record_time(self, median_ms: float, p90_ms: float | None = None) -> None:
        """Set the row's per-call milliseconds, and the throughput they give at its batch size."""
        self.median_ms, self.p90_ms = median_ms, p90_ms
        self.throughput = self.batch / (median_ms / 1e3)


def time_calls(call: Callable[[], object], warmup: int = 20, repeats: int = 100) -> tuple[float, float]:
    """Median and p90 milliseconds of ``call`` (CUDA-synchronised per call)."""
    with torch.no_grad():
        for _ in range(warmup):
            call()
        torch.cuda.synchronize()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


# After every contender of a model was timed once, each timed call is timed again this many rounds, all contenders in
# turn in each round; a row keeps the median of its timings (``retime_in_turn``).
RETIME_ROUNDS = 3


def retime_in_turn(
    timed: list[tuple[Row, Callable[[], object]]],
    rounds: int = RETIME_ROUNDS,
    timer: Callable[[Callable[[], object]], tuple[float, float]] = lambda call: time_calls(call, warmup=5),
) -> None:
    """Time each row's call ``rounds`` more times, the rows in turn each round; keep the median of its timings.

    A model's contenders are otherwise timed one after the other, minutes apart; the GPU host's clocks and load drift
    meanwhile (through-AITune rows moved by about 0.1 ms on an H100 on 2026-12-07, a third of a small model's call).
    Taking turns spreads such drift over every contender alike.
    """
    medians = {id(row): [row.median_ms] for row, _ in timed}
    p90s = {id(row): [row.p90_ms] for row, _ in timed}
    for _ in range(rounds):
        for row, call in timed:
            median, p90 = timer(call)
            medians[id(row)].append(median)
            p90s[id(row)].append(p90)
    for row, _ in timed:
        row.record_time(statistics.median(medians[id(row)]), statistics.median(p90s[id(row)]))


def tune_aitune(
    model_name: str,
    backend,
    batches: list[int],
    out: Path,
    label: str,
    save: bool = True,
    recorded_calls: int = 1,
    seed: int = 0,
):
    """Tune a fresh copy of the model with one backend through AITune; save it; return (module, seconds).

    ``recorded_calls``: AITune's ``max_num_samples_stored`` for this tune (the calls a quantized build calibrates on).
    ``seed``: the model's weights (the same architecture).
    """
    import aitune.torch as ait
    from aitune.torch.module_registry import MODULE_REGISTRY

    MODULE_REGISTRY.clear()
    model, make = build(model_name, seed)
    model = model.cuda()
    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)
    strategy.enable_performance_validation(False)
    tuned = ait.Module(model, f"{model_name}-{label}", strategy=strategy)
    # Dict samples and a calling function: AITune collates them per key (several positional tensors of different
    # shapes are collated wrongly); each sample is one unbatched item.
    data = [{f"arg{i}": t[0] for i, t in enumerate(make(1))} for _ in range(4)]

    def call(**batch: torch.Tensor) -> object:
        return tuned(*(batch[f"arg{i}"] for i in range(len(batch))))

    stored = ait.config.max_num_samples_stored
    ait.config.max_num_samples_stored = recorded_calls
    start = time.perf_counter()
    try:
        ait.tune(call, data, batch_sizes=sorted({1, max(batches)}), device="cuda", ignore_failing_modules=False)
    finally:
        ait.config.max_num_samples_stored = stored
    seconds = time.perf_counter() - start
    if save:
        ait.save(tuned, out / f"{model_name}-{label}.ait")
    return tuned, seconds


def bare_compile(model: nn.Module, example: tuple[torch.Tensor, ...], max_batch: int) -> tuple[nn.Module, float]:
    """``torch.export`` + ``torch_tensorrt.dynamo.compile`` over batch 1..max_batch, by hand: the tune-time floor."""
    import torch_tensorrt

    start = time.perf_counter()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(
        copy.deepcopy(model), example, dynamic_shapes=tuple({0: batch} for _ in example), strict=False
    )
    specs = [
        torch_tensorrt.Input(
            min_shape=(1, *x.shape[1:]),
            opt_shape=(max(1, max_batch // 2), *x.shape[1:]),
            max_shape=(max_batch, *x.shape[1:]),
            dtype=x.dtype,
        )
        for x in example
    ]
    compiled = torch_tensorrt.dynamo.compile(program, inputs=specs)
    return compiled, time.perf_counter() - start


def cpp_rows(
    model_name: str, package: Path, inputs: dict[int, tuple[torch.Tensor, ...]], expected: dict, out: Path, size: int
) -> list[Row]:
    """The C++ example on ``package`` at each batch size, without and with CUDA graphs (``cpp-pt2``).

    It runs the package on the benchmark's inputs, prints its largest difference from eager fp32 and, with
    ``--time``, the median of ``CPP_TIMED_CALLS`` synchronised calls; an example that does not build or run gives
    rows with a note.
    """
    from examples import cpp_example
    from examples.pt2_cases import write_cases

    cases = out / f"{model_name}-cpp-cases.pt"
    write_cases(str(cases), [(list(inputs[b]), expected[b]) for b in inputs], max_batch=max(inputs))
    try:
        binary = cpp_example.build(out / "cpp-build")
    except (cpp_example.ToolMissingError, cpp_example.BuildFailedError) as error:
        return [Row(model_name, CPP_LABELS[False], 0, note=f"not built: {str(error)[:160]}")]
    rows = []
    for graphs in (False, True):
        command = cpp_example.command(binary, package, cases, cuda_graphs=graphs, timed_calls=CPP_TIMED_CALLS)
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        report = cpp_example.parse(result.stdout)
        for b in inputs:
            row = Row(model_name, CPP_LABELS[graphs], b, artifact_bytes=size)
            row.max_abs_err = report.errors.get(b)
            if report.median_ms.get(b):
                row.record_time(report.median_ms[b])
            else:
                row.note = f"exit {result.returncode}: {result.stderr.strip()[-160:]}"
            rows.append(row)
    return rows


def profile_calls(label: str, call: Callable[[], object], calls: int = 500, top: int = 15) -> None:
    """Print where the host time of ``calls`` calls goes (cProfile, by own time) to stderr."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    with torch.no_grad():
        call()
        profiler.enable()
        for _ in range(calls):
            call()
        torch.cuda.synchronize()
        profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    print(f"\n### profile: {label}, {calls} calls\n{text.getvalue()}", file=sys.stderr)


def measure_model(
    model_name: str, batches: list[int], out: Path, contenders: list[str], profile: bool = False
) -> list[Row]:
    """All contenders for one model."""
    from aitune.torch.backend import TorchTensorRTAotBackend as BuiltIn

    from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig, direct_call, load_pt2

    reference, make = build(model_name)
    reference = reference.cuda()
    inputs = {b: make(b) for b in batches}
    with torch.no_grad():
        expected = {b: reference(*x) for b, x in inputs.items()}
    rows: list[Row] = []

    timed: list[tuple[Row, Callable[[], object]]] = []  # timed again in turn once every contender ran

    def add(contender: str, fn: Callable[..., torch.Tensor], **extra) -> None:
        for b in batches:
            row = Row(model_name, contender, b, **extra)
            try:
                with torch.no_grad():
                    output = fn(*inputs[b]).float()
                row.max_abs_err = float((output - expected[b]).abs().max())
                row.cosine = accuracy_metrics(output, expected[b])[0]
                call = partial(fn, *inputs[b])
                row.record_time(*time_calls(call))
                timed.append((row, call))
            except Exception as error:  # a contender failing is a result, not a crash of the benchmark
                row.note = f"{type(error).__name__}: {str(error)[:120]}"
            rows.append(row)

    if "eager" in contenders:
        add("eager fp32", reference)
    if "eager-fp16" in contenders:
        half = copy.deepcopy(reference).half()
        add("eager fp16", lambda *xs: half(*(x.half() for x in xs)))
    if "inductor" in contenders:
        compiled = torch.compile(copy.deepcopy(reference), dynamic=True)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(*inputs[batches[0]])
        add("torch.compile fp32", compiled, tune_s=time.perf_counter() - start)

    if "bare" in contenders:
        try:
            # Twice, keeping the faster: the first compile of a process also pays one-time start-up work.
            compiled, seconds = bare_compile(reference, inputs[max(batches)], max(batches))
            del compiled
            compiled, again = bare_compile(reference, inputs[max(batches)], max(batches))
            print(f"{model_name}: bare compile {seconds:.2f} s, then {again:.2f} s", file=sys.stderr)
            add("bare torch_tensorrt.dynamo.compile fp32", compiled, tune_s=min(seconds, again))
        except Exception as error:
            rows.append(Row(model_name, "bare torch_tensorrt.dynamo.compile fp32", 0, note=f"failed: {error!r:.160}"))

    for key, (label, precision, fields) in OURS.items():
        if key not in contenders:
            continue
        config = TorchTensorRTAotBackendConfig(precision=precision, **fields)
        recorded = CALIBRATION_CALLS if is_quantized(precision) else 1
        # Where a run ended, if it ends without a message (an 8-bit contender after others did, docs/known-issues.md).
        print(f"{model_name}: tuning {key}", file=sys.stderr, flush=True)
        try:
            with engine_error_check(key):
                tuned, seconds = tune_aitune(
                    model_name, TorchTensorRTAotBackend(config), batches, out, key, recorded_calls=recorded
                )
        except Exception as error:
            rows.append(Row(model_name, label, 0, note=f"tune failed: {type(error).__name__}: {str(error)[:160]}"))
            continue
        [backend] = list(tuned._self_wrapper.backends.values())
        size = backend.artifact_path.stat().st_size
        if is_quantized(precision):  # which layers run in 8 bits: the benchmark note's evidence
            print(f"{model_name} {key}: {backend.precision}; {backend.coverage.describe()}", file=sys.stderr)
        retune_s = None
        if key == "ours-default":
            # The same model again, from a fresh copy: what a second ait.tune costs with the build cache.
            again, retune_s = tune_aitune(model_name, TorchTensorRTAotBackend(config), batches, out, key, save=False)
            [reused] = list(again._self_wrapper.backends.values())
            if not reused.built_from_cache:
                print(f"{model_name}: the second tune did not reuse the build cache", file=sys.stderr)
                retune_s = None
            del again, reused
        add(label, tuned, tune_s=seconds, artifact_bytes=size, tune_steps=backend.build_seconds, retune_s=retune_s)
        if key == "ours-default":
            # The same engines through aitune_trt_aot.direct_call: this backend's shape check, no AITune layer.
            add(f"direct_call: {label.removeprefix('aitune_trt_aot ')}", direct_call(tuned), artifact_bytes=size)
        if profile:
            profile_calls(f"{model_name} {label} batch {batches[0]}", partial(tuned, *inputs[batches[0]]))
        if key in RAW_FLOORS or "raw" in contenders:
            # The loaded artifact (in its CUDA-graph runner where the config uses one), called without AITune and
            # without this backend's shape check: what the per-call overhead is measured against.
            add(f"raw: {label.removeprefix('aitune_trt_aot ')}, no AITune", backend.runner, artifact_bytes=size)
        if key == "ours-pt2-fp32":
            # The package as a deployment runs it: load_pt2 (CUDA graphs "auto", the kernel strategy it records).
            add("load_pt2: fp32 .pt2, no AITune", load_pt2(backend.artifact_path), artifact_bytes=size)
            if "cpp-pt2" in contenders:  # the same package from C++, with and without CUDA graphs
                rows += cpp_rows(model_name, backend.artifact_path, inputs, expected, out, size)
    if "builtin" in contenders:
        try:
            tuned, seconds = tune_aitune(model_name, BuiltIn(), batches, out, "builtin")
            [backend] = list(tuned._self_wrapper.backends.values())
            size = backend._exported_model_artifact.path.stat().st_size
            add(AITUNE_LABELS["builtin"], tuned, tune_s=seconds, artifact_bytes=size)
            if profile:
                profile_calls(f"{model_name} built-in batch {batches[0]}", partial(tuned, *inputs[batches[0]]))
        except Exception as error:
            rows.append(Row(model_name, AITUNE_LABELS["builtin"], 0, note=f"tune failed: {type(error).__name__}"))
    try:
        retime_in_turn(timed)
    except Exception as error:  # the first timings stand
        print(f"{model_name}: timing in turn failed ({type(error).__name__}: {error})", file=sys.stderr)
    return rows


def load_and_first_call_seconds(
    model_name: str, out: Path, batches: list[int]
) -> tuple[dict[str, tuple[float, list]], str | None]:
    """Per saved checkpoint of the model, in one fresh process: ``ait.load`` seconds, then each first call's.

    The first calls are made at each batch size of ``batches``, in that order (all inside the built range 1..max):
    the seconds of the first call at each built shape after the load. Returns them per contender key, and what went
    wrong when the process failed (then no times), for the table's note: a message on standard error alone can be
    lost (docs/known-issues.md, "Standard error lost after a second tune").
    """
    code = f"""
import json, time, sys
import aitune_trt_aot, aitune.torch as ait, torch
from benchmarks.run import build
from pathlib import Path
result = {{}}
for path in sorted(Path({str(out)!r}).glob("{model_name}-*.ait")):
    model, make = build("{model_name}")
    start = time.perf_counter()
    loaded = ait.load(ait.Module(model, path.stem), path)
    torch.cuda.synchronize()
    load = time.perf_counter() - start
    first_calls = []
    for batch in {list(batches)!r}:
        inputs = make(batch)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            loaded(*inputs)
        torch.cuda.synchronize()
        first_calls.append(time.perf_counter() - start)
    result[path.stem.split("-", 1)[1]] = (load, first_calls)
print(json.dumps(result))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        print(f"load timing for {model_name} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no message"]
        return {}, f"load timing failed (exit {done.returncode}): {last[0][:160]}"
    loads = {key: tuple(value) for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    return loads, None if loads else f"load timing found no {model_name}-*.ait in {out}"


def first_call_summary(seconds: list[float]) -> tuple[float, float] | None:
    """Worst and median of the first calls at each built shape after a load; None when none were measured."""
    if not seconds:
        return None
    return max(seconds), statistics.median(seconds)


def add_ratios(rows: list[Row]) -> None:
    """Latency of each row relative to eager fp32 and to the built-in backend (same model and batch)."""
    index = {(r.model, r.contender, r.batch): r for r in rows}
    for row in rows:
        for base in ("eager fp32", "AITune built-in fp32"):
            other = index.get((row.model, base, row.batch))
            if other and other.median_ms and row.median_ms:
                row.ratios[f"vs {base.split()[0]}"] = row.median_ms / other.median_ms


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    head = (
        "| model | contender | batch | median ms | cos vs fp32 | p90 ms | items/s | x eager | x built-in | tune s | MB "
        "| load s | 1st call s | 1st call at each shape s (worst / median) | max abs err | note |"
    )
    lines = [head, "|" + "---|" * 16]
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        summary = first_call_summary(r.first_calls_s)
        per_shape = "" if summary is None else f"{summary[0]:.2f} / {summary[1]:.2f}"
        lines.append(
            f"| {r.model} | {r.contender} | {r.batch or ''} | {fmt(r.median_ms, '.3f')} | {fmt(r.cosine, '.5f')} | "
            f"{fmt(r.p90_ms, '.3f')} | "
            f"{fmt(r.throughput, '.0f')} | {fmt(r.ratios.get('vs eager'), '.2f')} | "
            f"{fmt(r.ratios.get('vs AITune'), '.2f')} | {fmt(r.tune_s, '.1f')} | "
            f"{fmt(None if r.artifact_bytes is None else r.artifact_bytes / 1e6, '.1f')} | {fmt(r.load_s, '.1f')} | "
            f"{fmt(r.first_call_s, '.2f')} | {per_shape} | {fmt(r.max_abs_err, '.1e')} | {r.note} |"
        )
    return "\n".join(lines)


def chart(rows: list[Row], path: Path) -> None:
    """Bar chart of median latency relative to eager fp32, per model and batch size."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart", file=sys.stderr)
        return
    groups = sorted({(r.model, r.batch) for r in rows if r.batch})
    contenders = sorted({r.contender for r in rows if r.ratios.get("vs eager")})
    fig, ax = plt.subplots(figsize=(max(8, len(groups) * 1.2), 5))
    width = 0.8 / max(1, len(contenders))
    for i, contender in enumerate(contenders):
        values = [
            next((r.ratios.get("vs eager", 0) for r in rows if (r.model, r.batch, r.contender) == (*g, contender)), 0)
            for g in groups
        ]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=contender)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))], [f"{m}\nbs{b}" for m, b in groups])
    ax.set_ylabel("median latency / eager fp32 (lower is better)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# (build_seconds key, column head), in the table's order; the steps add up to the tune, the details are parts of them.
BREAKDOWN_COLUMNS = (
    ("cache_lookup", "cache lookup"),
    ("quantize", "quantize"),
    ("calibration", "of which calibration"),
    ("capture", "capture"),
    ("compile", "TensorRT compile"),
    ("artifact_save", "save"),
    ("artifact_load", "reload"),
    ("self_check", "self-check"),
    ("first_calls", "of which first calls"),
    ("kernel_cache_save", "kernel cache save"),
)
DETAIL_COLUMNS = ("calibration", "first_calls")  # parts of a step, not added to the sum
STEP_COLUMNS = tuple(key for key, _ in BREAKDOWN_COLUMNS if key not in DETAIL_COLUMNS)


def tune_breakdown(rows: list[Row]) -> str:
    """Where each of this backend's tunes spent its time, as a markdown table (one line per model and contender).

    ``quantize`` is ModelOpt's quantization of the module copy (INT8/FP8), ``calibration`` its calibration passes;
    ``compile`` is the TensorRT compile without the capture; "AITune's own" is ``ait.tune`` minus every build step
    (recording, sample handling, profiling).
    """
    heads = " | ".join(head for _, head in BREAKDOWN_COLUMNS)
    head = f"| model | contender | ait.tune s | {heads} | AITune's own | second ait.tune s (build cache) |"
    lines = [head, "|" + "---|" * (len(BREAKDOWN_COLUMNS) + 5)]
    seen = set()
    for r in rows:
        if not r.tune_steps or (r.model, r.contender) in seen:
            continue
        seen.add((r.model, r.contender))
        steps = dict(r.tune_steps)
        capture = steps.get("capture") or 0.0
        steps["compile"] = steps.get("compile", 0.0) - capture
        own = (r.tune_s or 0.0) - sum(steps.get(k, 0.0) for k in STEP_COLUMNS)
        cells = " | ".join(f"{steps[k]:.1f}" if k in steps else "" for k, _ in BREAKDOWN_COLUMNS)
        again = "" if r.retune_s is None else f"{r.retune_s:.1f} ({r.retune_s / r.tune_s:.2f}x)"
        lines.append(f"| {r.model} | {r.contender} | {r.tune_s or 0:.1f} | {cells} | {own:.1f} | {again} |")
    return "\n".join(lines)


def write_outputs(rows: list[Row], out: Path) -> None:
    """Print the table; write table.md, results.json and chart.png to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    text = table(rows) + "\n\nTune time by step (seconds):\n\n" + tune_breakdown(rows)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    chart(rows, out / "chart.png")


def merge(run_dirs: list[Path], out: Path) -> int:
    """One table and chart from the results.json of several runs (e.g. one run per model)."""
    rows = [Row(**row) for run in run_dirs for row in json.loads((run / "results.json").read_text())]
    write_outputs(rows, out)
    return 0


def own_process_contenders(contenders: list[str]) -> list[str]:
    """The 8-bit contenders of ours to run each in a benchmark process of its own, when others share the run.

    On the H100 (2026-12-07) runs that tuned an 8-bit contender after other contenders of ours ended with status 1 and
    no message, losing every row of that model; alone in a process the same contender ran (docs/known-issues.md).
    """
    quantized = [c for c in contenders if c in OURS and is_quantized(OURS[c][1])]
    return quantized if len(contenders) > 1 else []


def run_in_own_process(model_name: str, contender: str, batches: list[int], out: Path) -> list[Row]:
    """``contender`` for ``model_name`` in a fresh benchmark process; its rows, or one row saying how it ended."""
    run_dir = out / f"{model_name}-{contender}-run"
    command = [sys.executable, "-m", "benchmarks.run", "--models", model_name, "--contenders", contender]
    command += ["--batches", *map(str, batches), "--out", str(run_dir)]
    print(f"{model_name}: {contender} in a process of its own", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=False, cwd=Path(__file__).resolve().parents[1])
    results = run_dir / "results.json"
    if done.returncode != 0 or not results.exists():
        label = OURS[contender][0] if contender in OURS else contender
        return [Row(model_name, label, 0, note=f"its own benchmark process ended with status {done.returncode}")]
    return [Row(**row) for row in json.loads(results.read_text())]


def main() -> int:
    """Run the benchmark and write its outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "two_inputs", "resnet50", "encoder"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument(
        "--contenders",
        nargs="+",
        default=["eager", "eager-fp16", "inductor", "bare", "builtin", *OURS, "cpp-pt2"],
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--profile", action="store_true", help="print a cProfile of AITune contenders' calls")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="RUN_DIR", help="tabulate earlier runs' results")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    if not torch.cuda.is_available():
        print("ERROR: the benchmark needs an NVIDIA GPU (torch.cuda.is_available() is False).", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    # An empty build cache: every tune row is a real build; only the explicit second tune may reuse one.
    os.environ["AITUNE_TRT_AOT_CACHE_DIR"] = tempfile.mkdtemp(prefix="aitune_trt_aot-bench-cache-")
    rows: list[Row] = []
    apart = own_process_contenders(args.contenders)
    shared = [c for c in args.contenders if c not in apart]
    for model_name in args.models:
        model_rows = measure_model(model_name, args.batches, args.out, shared, args.profile)
        loads, load_failure = load_and_first_call_seconds(model_name, args.out, args.batches)
        for row in model_rows:
            if load_failure and row.contender in AITUNE_LABELS.values() and row.batch == args.batches[0]:
                row.note = "; ".join(filter(None, [row.note, load_failure]))
            for key, (seconds, first_calls) in loads.items():
                if AITUNE_LABELS.get(key) == row.contender:
                    row.load_s, row.first_calls_s = seconds, first_calls
                    row.first_call_s = first_calls[0] if first_calls else None
        if apart:  # written first: a run cut short while the children run keeps the shared rows (lost once, H100)
            add_ratios(rows + model_rows)
            write_outputs(rows + model_rows, args.out)
        for contender in apart:  # after the shared rows: their processes start once this one's GPU work is done
            model_rows += run_in_own_process(model_name, contender, args.batches, args.out)
        rows += model_rows
        print(f"done {model_name}", file=sys.stderr)
        add_ratios(rows)
        write_outputs(rows, args.out)  # after every model: a run cut short keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
