"""The main job: a real tuning run with this backend, a save, and a reload in a fresh process.

    python -m aitune_trt_aot.demo [--ir dynamo|ts] [--precision fp32|fp16] [--out DIR]

Exits 0 when the reloaded model matches eager PyTorch, 2 when this machine has no NVIDIA GPU,
3 when Torch-TensorRT or AITune is missing, 1 when tuning or the check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

FEATURES, BATCH_SIZES, CHECK_BATCHES = 128, [1, 8, 16], (1, 5, 16)
TOLERANCE = {"fp32": 5e-3, "fp16": 3e-2}


def build_model() -> nn.Module:
    """A small MLP with fixed random weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10)).eval()


def inputs(batch: int) -> torch.Tensor:
    """Deterministic inputs of one batch size."""
    torch.manual_seed(batch)
    return torch.randn(batch, FEATURES, device="cuda")


def _gpu_problem() -> str | None:
    if shutil.which("nvidia-smi") is None and not Path("/proc/driver/nvidia").exists():
        return "No NVIDIA GPU was found on this machine (no driver, no nvidia-smi)."
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False)."
    return None


def _strategy(backend):
    import aitune.torch as ait

    strategy = ait.OneBackendStrategy(backend=backend)
    strategy.enable_find_max_batch_size(False)  # keep the batch range 1..16 as asked
    # Report the speed-up over eager without letting AITune swap the backend for eager on a tiny model.
    strategy.enable_performance_validation("diagnostic")
    return strategy


def tune_and_save(ir: str, precision: str, out: Path) -> dict:
    """Tune the MLP, check it against eager, save ``model.ait`` and the expected outputs."""
    import aitune.torch as ait

    import aitune_trt_aot
    from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
    from aitune_trt_aot.tuned import tuned_module

    config = TorchTensorRTAotBackendConfig(ir=ir, precision=precision)
    model = build_model().cuda()
    reference = copy.deepcopy(model)
    strategy = _strategy(TorchTensorRTAotBackend(config))
    tuned = ait.Module(model, "demo-mlp", strategy=strategy)
    data = [torch.randn(FEATURES, device="cuda") for _ in range(8)]
    start = time.perf_counter()
    ait.tune(tuned, data, batch_sizes=BATCH_SIZES, device="cuda", ignore_failing_modules=False)
    tune_seconds = time.perf_counter() - start
    backends = list(tuned_module(tuned).backends.values())
    if not all(isinstance(b, TorchTensorRTAotBackend) for b in backends):
        raise RuntimeError(f"AITune selected {backends}, not TorchTensorRTAotBackend")
    errors, expected = {}, {}
    with torch.no_grad():
        for batch in CHECK_BATCHES:
            x = inputs(batch)
            output = tuned(x)
            errors[batch] = float((output - reference(x)).abs().max())
            expected[batch] = output.cpu()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(expected, out / "expected.pt")
    aitune_trt_aot.save(tuned, out / "model.ait")
    speedups = [f"{r.speedup:.2f}x" for r in getattr(strategy, "perf_validation_results", [])]
    return {
        "tune_seconds": tune_seconds,
        "errors_vs_eager": errors,
        "precision": backends[0].precision,
        "speedup": speedups,
        "from_cache": any(b.built_from_cache for b in backends),
    }


def load_and_check(out: Path) -> dict:
    """In a fresh process: ``ait.load`` the checkpoint and compare with the outputs saved at tuning."""
    import aitune.torch as ait

    import aitune_trt_aot  # noqa: F401  (registers the backend; the checkpoint would import it anyway)

    start = time.perf_counter()
    loaded = ait.load(
        ait.Module(build_model(), "demo-mlp", strategy=_strategy(aitune_trt_aot.TorchTensorRTAotBackend())),
        out / "model.ait",
    )
    load_seconds = time.perf_counter() - start
    expected = torch.load(out / "expected.pt")
    with torch.no_grad():
        errors = {
            batch: float((loaded(inputs(batch)).cpu() - output).abs().max()) for batch, output in expected.items()
        }
    return {"load_seconds": load_seconds, "errors_vs_tuned": errors}


def main(argv: list[str] | None = None) -> int:
    """Run the demo; see the module docstring for exit codes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ir", default="dynamo", choices=["dynamo", "ts"])
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16"])
    parser.add_argument("--out", type=Path, default=None, help="where to write model.ait (default: a temp folder)")
    parser.add_argument("--load", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    problem = _gpu_problem()
    if problem:
        print(
            f"ERROR: {problem} This demo builds TensorRT engines and needs an NVIDIA GPU; nothing was run.",
            file=sys.stderr,
        )
        return 2
    try:
        import aitune.torch  # noqa: F401

        from aitune_trt_aot.stack import require_torch_tensorrt

        require_torch_tensorrt()
    except Exception as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 3
    if args.load is not None:
        print(json.dumps(load_and_check(args.load)))
        return 0

    out = args.out or Path(tempfile.mkdtemp(prefix="aitune-trt-aot-demo-"))
    tuned = tune_and_save(args.ir, args.precision, out)
    print(
        f"tuned ir={args.ir} {tuned['precision']} in {tuned['tune_seconds']:.1f}s"
        f"{' (engines reused from the build cache: a run before built them)' if tuned['from_cache'] else ''}; "
        f"throughput vs eager (AITune's "
        f"profile): {tuned['speedup'] or 'not measured'}; max abs error vs eager: {tuned['errors_vs_eager']}"
    )
    result = subprocess.run(
        [sys.executable, "-m", "aitune_trt_aot.demo", "--load", str(out)], capture_output=True, text=True
    )
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        print("ERROR: reloading the checkpoint in a fresh process failed.", file=sys.stderr)
        return 1
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"reloaded {out / 'model.ait'} in a fresh process in {loaded['load_seconds']:.1f}s; "
        f"max abs error vs tuned: {loaded['errors_vs_tuned']}"
    )
    worst = max(tuned["errors_vs_eager"].values())
    if worst > TOLERANCE[args.precision] or max(loaded["errors_vs_tuned"].values()) > 1e-5:
        print(f"ERROR: outputs differ more than allowed ({worst:.3g} vs eager).", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
