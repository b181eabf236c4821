"""GPU: ``.pt2`` AOTInductor packages, through AITune, standalone in Python, and from C++ (examples/cpp)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import (
    CompilationSettings,
    InputShapeError,
    MissingRequirementError,
    Pt2InputError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    load_pt2,
    save_pt2,
)
from aitune_trt_aot.pt2_runtime import runtime_library, tensorrt_library
from aitune_trt_aot.stack import is_tensorrt_rtx
from tests.conftest import subprocess_env
from tests.gpu_support import (
    inputs_for,
    max_abs_error,
    reload_in_fresh_process,
    scale_of,
    selected_backends,
    tune_case,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from pt2_cases import write_cases  # noqa: E402

pytestmark = pytest.mark.gpu
OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"
FP32_TOLERANCE = 5e-3
# TensorRT-RTX: the package's engines run in the C++ runtime, where dynamic shapes are refused (known-issues.md),
# so packages are built for batch 8 only there; elsewhere for the range 1..16.
STATIC = is_tensorrt_rtx()
TUNE_BATCHES = (8, 8) if STATIC else (1, 8, 16)
CHECK_BATCHES = (8,) if STATIC else (1, 5, 16)
MAX_BATCH = max(TUNE_BATCHES)


def _pt2_backend(precision: torch.dtype = torch.float32) -> TorchTensorRTAotBackend:
    settings = CompilationSettings(enabled_precisions={precision})
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(compile_config=settings, output_format="aot_inductor"))


def _json_tail(result: subprocess.CompletedProcess, what: str) -> dict:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pt2_dynamic_shapes_refused_on_tensorrt_rtx() -> None:
    """On TensorRT-RTX a dynamic-batch package is refused before any work, with the reason and what to do."""
    if not is_tensorrt_rtx():
        pytest.skip("standard TensorRT builds dynamic-shape packages")
    with pytest.raises(MissingRequirementError, match=r"saving 'aot_inductor' with dynamic shapes .* Use ir='dynamo'"):
        tune_case("mlp", _pt2_backend(), batch_sizes=(1, 16))


@pytest.mark.parametrize(("case", "precision"), [("mlp", torch.float16), ("two_inputs", torch.float32)])
def test_pt2_format_through_aitune(tmp_path: Path, repo_root: Path, case: str, precision: torch.dtype) -> None:
    """output_format='aot_inductor': tuning runs the package; ait.load in a fresh process runs it again."""
    tuned, reference = tune_case(case, _pt2_backend(precision), batch_sizes=TUNE_BATCHES)
    (backend,) = selected_backends(tuned)
    assert backend.artifact_format == "aot_inductor" and backend.artifact_path.suffix == ".pt2"
    tolerance = FP32_TOLERANCE if precision == torch.float32 else 3e-2
    errors = {b: max_abs_error(tuned, reference, case, b, repeats=5) for b in CHECK_BATCHES}
    print(f"\n[{case} {precision} .pt2 in the tuning process] max abs error vs eager: {errors}")
    assert max(errors.values()) <= tolerance * max(1.0, scale_of(reference, case, MAX_BATCH))

    report = reload_in_fresh_process(repo_root, tmp_path, tuned, reference, case, CHECK_BATCHES)
    print(f"[{case} {precision} .pt2 via ait.load, fresh process] {report}")
    assert report["backends"] == [OURS]
    assert max(report["errors"].values()) <= 1e-5

    if case == "two_inputs":
        # Standalone: the package's signature is the model's, minus the value built in (scale=0.5).
        package = load_pt2(save_pt2(tuned, tmp_path / "two_inputs.pt2"))
        assert package.constants == {"scale": 0.5}
        (x, y), kwargs = inputs_for(case, CHECK_BATCHES[-1])
        with torch.no_grad():
            error = float((package(x, y, bias=kwargs["bias"]) - reference(x, y, **kwargs)).abs().max())
        print(f"[two_inputs .pt2 standalone, keyword tensor] max abs error vs eager {error:.2e}")
        assert error <= FP32_TOLERANCE


def _build_cpp_example(repo_root: Path, build_dir: Path) -> Path:
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("the C++ example needs cmake and a C++ compiler")
    configure = [
        "cmake",
        "-S",
        str(repo_root / "examples" / "cpp"),
        "-B",
        str(build_dir),
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DTORCHTRT_RUNTIME={runtime_library()}",
        f"-DTENSORRT_LIBRARY={tensorrt_library()}",
    ]
    for command in (configure, ["cmake", "--build", str(build_dir), "-j", "8"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command[:2]} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return build_dir / "inference"


def test_mlp_pt2_end_to_end(tmp_path: Path, repo_root: Path) -> None:
    """Tune, ait.save/ait.load, save_pt2, run without AITune in Python, and from the C++ example."""
    tuned, reference = tune_case("mlp", _pt2_backend(), batch_sizes=TUNE_BATCHES)
    errors = {b: max_abs_error(tuned, reference, "mlp", b, repeats=5) for b in CHECK_BATCHES}
    print(f"\n[mlp fp32 .pt2 in the tuning process] max abs error vs eager: {errors}")
    assert max(errors.values()) <= FP32_TOLERANCE
    with pytest.raises(InputShapeError, match="outside the built range"):
        tuned(torch.randn(MAX_BATCH + 1, 64, device="cuda"))

    report = reload_in_fresh_process(repo_root, tmp_path, tuned, reference, "mlp", CHECK_BATCHES)
    print(f"[mlp fp32 .pt2 via ait.load, fresh process] {report}")
    assert report["backends"] == [OURS] and max(report["errors"].values()) <= 1e-5

    package = save_pt2(tuned, tmp_path / "mlp.pt2")
    case_batches = CHECK_BATCHES[:1] if STATIC else (1, 5)
    cases = []
    for batch in case_batches:
        (x,), _ = inputs_for("mlp", batch)
        with torch.no_grad():
            cases.append(([x], reference(x)))
    write_cases(str(tmp_path / "cases.pt"), cases, max_batch=MAX_BATCH)

    # Python, no AITune and no torch_tensorrt in the process (examples/deploy_pt2.py reports what it imported).
    script = str(repo_root / "examples" / "deploy_pt2.py")
    result = subprocess.run(
        [sys.executable, script, str(package), "--check-cases", str(tmp_path / "cases.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(repo_root),
    )
    deployed = _json_tail(result, "examples/deploy_pt2.py")
    print(f"[mlp .pt2 standalone Python] {deployed}")
    assert deployed["imported"] == []
    assert set(deployed["errors"]) == {str(b) for b in case_batches}
    assert max(deployed["errors"].values()) <= FP32_TOLERANCE

    standalone = load_pt2(package)
    allowed = f"{MAX_BATCH}" if STATIC else f"1..{MAX_BATCH}"
    with pytest.raises(Pt2InputError, match=f"size {MAX_BATCH + 1} on axis 0, compiled for {allowed}"):
        standalone(torch.randn(MAX_BATCH + 1, 64, device="cuda"))

    # C++: build the example against the installed LibTorch and run it on the same package and cases.
    binary = _build_cpp_example(repo_root, tmp_path / "cpp-build")
    result = subprocess.run([str(binary), str(package), str(tmp_path / "cases.pt")], capture_output=True, text=True)
    print(f"[C++ example]\n{result.stdout}{result.stderr[-2000:]}")
    assert result.returncode == 0
    cpp_errors = [float(e) for e in re.findall(r"max abs error vs expected (\S+)", result.stdout)]
    assert len(cpp_errors) == 3 * len(case_batches) and max(cpp_errors) <= FP32_TOLERANCE
    assert f"batch {MAX_BATCH + 1}: refused" in result.stdout
