"""GPU: ``.pt2`` AOTInductor packages standalone: in a fresh Python process without AITune, and from C++ (full tier).

Also: ``.pt2`` calls under CUDA graphs against calls without, and the warm-up at load (issue 28).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import (
    InputShapeError,
    Pt2InputError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    load_pt2,
    save_pt2,
)
from aitune_trt_aot.cuda_graphs import CudaGraphRunner
from examples import cpp_example
from examples.pt2_cases import write_cases
from tests.support import tolerances
from tests.support.gpu import (
    SWEEP,
    graph_count,
    graph_runner,
    inputs_for,
    reload_in_fresh_process,
    sweep_errors,
    the_backend,
    tune_case,
)
from tests.support.native import crash_report
from tests.support.processes import deploy_pt2

OURS = "aitune_trt_aot.backend.TorchTensorRTAotBackend"
MAX_BATCH = 16
CASE_BATCHES = tuple(dict.fromkeys(SWEEP))  # 8 distinct batch sizes in a changing order


def _pt2_backend(precision: str = "fp32") -> TorchTensorRTAotBackend:
    return TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(precision=precision, output_format="aot_inductor"))


def test_two_inputs_pt2_standalone_keywords_and_constants(tmp_path: Path) -> None:
    """The package's signature is the model's minus the built-in value; other keywords or values are refused."""
    tuned, reference = tune_case("two_inputs", _pt2_backend())
    assert the_backend(tuned).artifact_format == "aot_inductor"
    package = load_pt2(save_pt2(tuned, tmp_path / "two_inputs.pt2"))
    assert package.constants == {"scale": 0.5}
    (x, y), kwargs = inputs_for("two_inputs", 9)
    with torch.no_grad():
        error = float((package(x, y, bias=kwargs["bias"]) - reference(x, y, **kwargs)).abs().max())
        same = float((package(x, y, bias=kwargs["bias"], scale=0.5) - reference(x, y, **kwargs)).abs().max())
    print(f"\n[two_inputs .pt2 standalone] max abs error vs eager {error:.2e}")
    assert max(error, same) <= tolerances.FP32
    with pytest.raises(Pt2InputError, match="compiled with scale=0.5"):
        package(x, y, bias=kwargs["bias"], scale=2.0)
    with pytest.raises(Pt2InputError, match="takes no keyword 'shift'"):
        package(x, y, bias=kwargs["bias"], shift=1.0)


def test_packages_of_same_shaped_models_keep_their_own_engines() -> None:
    """Two MLPs with the same inputs and outputs but other weights, packaged one after the other in one process.

    Their packages have the same generated code, and AOTInductor keeps the engine beside that code in a folder named
    by its hash (docs/known-issues.md): each build must package its own engine, not the one written before it.
    """
    first, first_reference = tune_case("mlp", _pt2_backend(), name="mlp-seed0")
    second, second_reference = tune_case("mlp", _pt2_backend(), name="mlp-seed1", seed=1)
    (x,), _ = inputs_for("mlp", 5)
    with torch.no_grad():
        assert float((first_reference(x) - second_reference(x)).abs().max()) > 1e-2  # the models differ
        errors = [
            float((tuned(x) - reference(x)).abs().max())
            for tuned, reference in ((first, first_reference), (second, second_reference))
        ]
    print(f"\n[two same-shaped MLP packages] max abs error of each vs its own eager: {errors}")
    assert max(errors) <= tolerances.FP32


def _build_cpp_example(build_dir: Path) -> Path:
    """Build examples/cpp. Only missing tools skip; a shipped example that does not build fails the test."""
    try:
        binary = cpp_example.build(build_dir)
    except cpp_example.ToolMissingError as missing:
        pytest.skip(str(missing))
    except cpp_example.BuildFailedError as failed:
        pytest.fail(str(failed))
    # A static copy of libstdc++ in the executable crashes the package loader (CMakeLists.txt says why).
    needed = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True).stdout
    link_command = build_dir / "CMakeFiles" / "inference.dir" / "link.txt"
    assert "libstdc++.so.6" in needed, f"the example links libstdc++ statically:\n{needed}\n{link_command.read_text()}"
    return binary


def _run_cpp_example(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the example; on a failure print why (libraries looked for and found, a backtrace) and fail."""
    result = subprocess.run(command, capture_output=True, text=True)
    print(f"[C++ example {' '.join(command[3:])}]\n{result.stdout}{result.stderr[-2000:]}")
    if result.returncode != 0:
        print(crash_report(command, tmp_path))
    not_started = " (127: the dynamic loader could not start it)" if result.returncode == 127 else ""
    assert result.returncode == 0, (
        f"the C++ example exited with {result.returncode}{not_started}: {result.stderr.strip()[-300:]}"
    )
    return result


def _write_mlp_cases(reference: torch.nn.Module, path: Path, seed: int) -> None:
    """Inputs of the MLP at each batch size of the sweep, with eager's outputs, for the deployment examples."""
    cases = []
    for position, batch in enumerate(CASE_BATCHES):
        (x,), _ = inputs_for("mlp", batch, seed=seed + position)
        with torch.no_grad():
            cases.append(([x], reference(x)))
    write_cases(str(path), cases, max_batch=MAX_BATCH)


def test_mlp_pt2_end_to_end(tmp_path: Path) -> None:
    """Tune, save_pt2, run without AITune in a fresh Python process and from the C++ example, swept."""
    tuned, reference = tune_case("mlp", _pt2_backend())
    errors = sweep_errors(tuned, reference, "mlp")
    print(f"\n[mlp fp32 .pt2 in the tuning process] sweep errors vs eager: {errors}")
    assert max(errors.values()) <= tolerances.FP32
    with pytest.raises(InputShapeError, match="outside the built range"):
        tuned(torch.randn(MAX_BATCH + 1, 64, device="cuda"))

    package = save_pt2(tuned, tmp_path / "mlp.pt2")
    _write_mlp_cases(reference, tmp_path / "cases.pt", seed=500)

    # Python, no AITune and no torch_tensorrt in the process (examples/deploy_pt2.py reports what it imported).
    deployed = deploy_pt2(package, tmp_path / "cases.pt")
    print(f"[mlp .pt2 standalone Python, fresh process] {deployed}")
    assert deployed["imported"] == []
    assert set(deployed["errors"]) == {str(b) for b in CASE_BATCHES}
    assert max(deployed["errors"].values()) <= tolerances.FP32

    standalone = load_pt2(package)
    with pytest.raises(Pt2InputError, match=f"dimension 0 is {MAX_BATCH + 1}, outside the built range 1..{MAX_BATCH}"):
        standalone(torch.randn(MAX_BATCH + 1, 64, device="cuda"))

    # C++: build the example against the installed LibTorch and run it on the same package and cases.
    binary = _build_cpp_example(tmp_path / "cpp-build")
    result = _run_cpp_example(cpp_example.command(binary, package, tmp_path / "cases.pt"), tmp_path)
    cpp_errors = [float(e) for e in re.findall(r"max abs error vs expected (\S+)", result.stdout)]
    assert len(cpp_errors) == 3 * len(CASE_BATCHES) and max(cpp_errors) <= tolerances.FP32
    # Refused by the example's check of the package's input ranges, before the engine is reached.
    assert f"batch {MAX_BATCH + 1}: refused: input 0: size {MAX_BATCH + 1} on axis 0, compiled for 1..{MAX_BATCH}" in (
        result.stdout
    )


def test_cpp_example_under_cuda_graphs_matches_eager_and_times_both_ways(tmp_path: Path) -> None:
    """The C++ example with ``--cuda-graphs`` captures every case's shape and matches eager, as without graphs.

    The engines get the eager kernel strategy first. ``--time`` prints a median per shape both ways (no timing
    assertion: the benchmark's ``cpp-pt2`` rows compare them).
    """
    tuned, reference = tune_case("mlp", _pt2_backend())
    package = save_pt2(tuned, tmp_path / "mlp.pt2")
    _write_mlp_cases(reference, tmp_path / "cases.pt", seed=900)
    binary = _build_cpp_example(tmp_path / "cpp-build")
    cases = tmp_path / "cases.pt"
    captured = cpp_example.parse(
        _run_cpp_example(cpp_example.command(binary, package, cases, cuda_graphs=True, timed_calls=20), tmp_path).stdout
    )
    plain = cpp_example.parse(
        _run_cpp_example(cpp_example.command(binary, package, cases, timed_calls=20), tmp_path).stdout
    )
    print(f"\n[C++ example, mlp .pt2] with graphs {captured}\nwithout {plain}")
    assert captured.cuda_graphs and captured.kernel_strategy == 1 and captured.engines >= 1, captured
    assert captured.graphs_captured == len(CASE_BATCHES)
    assert set(captured.errors) == set(plain.errors) == set(CASE_BATCHES)
    assert max(captured.errors.values()) <= tolerances.FP32 and max(plain.errors.values()) <= tolerances.FP32
    assert set(captured.median_ms) == set(plain.median_ms) == set(CASE_BATCHES) and not plain.cuda_graphs


def test_pt2_under_cuda_graphs_gives_the_results_of_calls_without(tmp_path: Path, fresh_process) -> None:
    """The default config captures a .pt2's calls per shape, and they give the results of calls without graphs.

    The single-threaded AOTInductor runner is captured with the engines' kernels specialised eagerly. Across the batch
    sweep the results match eager and the package without graphs: in the tuning process, after ait.load in a fresh
    process, and through load_pt2 in a fresh process. The build compiled those kernels during the package's C++
    compile, on a twin of the engines, at every shape its self-check then checked (``pipeline.early_kernels``).
    """
    tuned, reference = tune_case("mlp", _pt2_backend())
    backend = the_backend(tuned)
    assert isinstance(graph_runner(backend), CudaGraphRunner), "cuda_graphs='auto' captures .pt2 calls"
    settings = backend.kernel_settings
    print(f"\n[mlp .pt2 under CUDA graphs] engine settings {settings}, kernel cache {backend.kernel_cache_path}")
    assert settings["strategy"] == "eager" and settings["engines"] >= 1, "the engines inside the package were reached"
    seconds = backend.build_seconds
    print(
        f"[mlp .pt2 build] kernels compiled during the save at {backend.early_kernel_shapes} in "
        f"{seconds.get('early_kernels')} s (save {seconds['artifact_save']} s); the self-check's first calls then "
        f"took {seconds.get('first_calls')} s"
    )
    assert backend.early_kernel_shapes == backend.checked_shapes, "a twin compiled every checked shape's kernels"
    errors = sweep_errors(tuned, reference, "mlp")
    print(f"[mlp .pt2 under CUDA graphs] {graph_count(backend)} graphs, sweep errors vs eager {errors}")
    assert max(errors.values()) <= tolerances.FP32
    assert graph_count(backend) >= len(CASE_BATCHES), "every batch size of the sweep was captured (none fell back)"

    package = save_pt2(tuned, tmp_path / "mlp.pt2")
    captured, plain = load_pt2(package), load_pt2(package, cuda_graphs=False)
    differences = {}
    with torch.no_grad():
        for position, batch in enumerate(SWEEP):
            for repeat in range(3):
                (x,), _ = inputs_for("mlp", batch, seed=700 + 3 * position + repeat)
                difference = float((captured(x) - plain(x)).abs().max())
                differences[batch] = max(differences.get(batch, 0.0), difference)
    print(f"[mlp load_pt2, graphs vs none] {captured.graphs.graph_count} graphs, max abs differences {differences}")
    assert captured.graphs.graph_count == len(CASE_BATCHES) and plain.graphs is None
    assert max(differences.values()) <= tolerances.FP32

    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, "mlp")
    print(f"[mlp .pt2 under CUDA graphs, ait.load in a fresh process] {report}")
    assert report["backends"] == [OURS] and report["served_by_backend"] == report["calls"]
    assert max(report["errors"].values()) <= tolerances.FP32
    assert max(report["errors_vs_eager"].values()) <= tolerances.FP32

    _write_mlp_cases(reference, tmp_path / "cases.pt", seed=900)
    with_graphs = deploy_pt2(package, tmp_path / "cases.pt")
    without = deploy_pt2(package, tmp_path / "cases.pt", "--cuda-graphs", "false")
    print(f"[mlp load_pt2 in fresh processes] graphs: {with_graphs}\nwithout: {without}")
    assert with_graphs["graphs"] == len(CASE_BATCHES) and without["graphs"] == 0
    assert with_graphs["imported"] == without["imported"] == []
    assert max(with_graphs["errors"].values()) <= tolerances.FP32 and max(without["errors"].values()) <= tolerances.FP32


@pytest.mark.parametrize("output_format", ["exported_program", "aot_inductor"])
def test_first_calls_after_a_fresh_load_find_the_shapes_warmed(
    tmp_path: Path, fresh_process, output_format: str
) -> None:
    """warm_up=True: ait.load in a fresh process warms every shape the self-check checked, one graph captured each.

    Calls at those shapes then reach the engines. No timing is asserted; the first-call seconds are printed.
    """
    config = TorchTensorRTAotBackendConfig(output_format=output_format, warm_up=True)
    tuned, reference = tune_case("mlp", TorchTensorRTAotBackend(config), name=f"mlp-warm-{output_format}")
    backend = the_backend(tuned)
    checked = [[list(shape) for shape in call] for call in backend.checked_shapes]
    assert [call.shapes() for call in backend._entry.warm_calls] == [[tuple(s) for s in c] for c in checked]
    batches = sorted({call[0][0] for call in checked})
    report = reload_in_fresh_process(fresh_process, tmp_path, tuned, reference, "mlp", batches=tuple(batches))
    print(f"\n[mlp {output_format} warm_up=True, ait.load in a fresh process] checked {checked}; {report}")
    assert report["warmed_shapes_at_load"] == [checked]
    assert report["graphs_at_load"] == [len(checked)], "each warmed shape was captured at load"
    assert report["served_by_backend"] == report["calls"] == 3 * len(batches)
    assert max(report["errors_vs_eager"].values()) <= tolerances.FP32
