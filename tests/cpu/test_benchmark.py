"""CPU: the benchmark's tables (``benchmarks/run.py``), from rows made by hand: no GPU, nothing timed."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.run import Row, first_call_summary, merge, table


def test_first_call_at_each_shape_is_given_as_worst_and_median() -> None:
    """The column the issue asks for: worst and median over the first calls at each built shape after a load."""
    assert first_call_summary([0.86, 0.05, 0.2]) == (0.86, 0.2)
    assert first_call_summary([0.3, 0.1]) == (0.3, 0.2)
    assert first_call_summary([]) is None
    rows = [
        Row("resnet50", "aitune_trt_aot default", 1, median_ms=1.5, load_s=1.3, first_call_s=0.86,
            first_calls_s=[0.86, 0.05, 0.2]),
        Row("resnet50", "eager fp32", 1, median_ms=3.0),
    ]  # fmt: skip
    lines = table(rows).splitlines()
    assert "| 1st call s | 1st call at each shape s (worst / median) | max abs err |" in lines[0]
    assert lines[1].count("---|") == lines[0].count("|") - 1
    assert "| 1.3 | 0.86 | 0.86 / 0.20 |" in lines[2]
    assert "|  |  |  |" in lines[3], "no load, no first calls: empty cells"


def test_runs_written_before_the_column_still_merge(tmp_path: Path) -> None:
    """A results.json without the per-shape first calls (earlier runs) merges, with that cell empty."""
    run = tmp_path / "old-run"
    run.mkdir()
    old = asdict(Row("mlp", "eager fp32", 1, median_ms=0.2))
    del old["first_calls_s"]
    (run / "results.json").write_text(json.dumps([old]))
    assert merge([run], tmp_path / "out") == 0
    assert "| mlp | eager fp32 | 1 | 0.200 |" in (tmp_path / "out" / "table.md").read_text()


def test_every_variant_of_ours_is_a_valid_config() -> None:
    """The benchmark's configs of this backend are made when it runs on the GPU host: each must be accepted here."""
    from aitune_trt_aot import TorchTensorRTAotBackendConfig
    from benchmarks.run import AITUNE_LABELS, OURS

    for key, (label, precision, fields) in OURS.items():
        config = TorchTensorRTAotBackendConfig(precision=precision, **fields)
        assert AITUNE_LABELS[key] == label and config.precision == precision


def test_8_bit_contenders_run_in_processes_of_their_own_when_others_share_the_run() -> None:
    """An 8-bit contender after others ended runs silently on the H100: each gets a process, unless it is alone."""
    from benchmarks.run import own_process_contenders

    assert own_process_contenders(["eager", "ours-fp16", "ours-int8", "ours-fp8"]) == ["ours-int8", "ours-fp8"]
    assert own_process_contenders(["ours-int8"]) == [], "alone: its own run already"
    assert own_process_contenders(["eager", "ours-default"]) == []


def test_a_contender_whose_process_ends_badly_leaves_a_row_saying_so(tmp_path: Path) -> None:
    """The child benchmark process really runs; without a GPU it exits 2, and the row names that status."""
    from benchmarks.run import run_in_own_process

    [row] = run_in_own_process("encoder", "ours-int8", [1, 32], tmp_path)
    assert (row.model, row.batch, row.median_ms) == ("encoder", 0, None)
    assert row.contender.startswith("aitune_trt_aot int8")
    assert row.note == "its own benchmark process ended with status 2"


def test_unchecked_contenders_switch_the_engine_error_check_off_while_they_tune_only(monkeypatch) -> None:
    """The ``-unchecked`` rows measure the check's cost: the switch is on while they tune, restored after."""
    from aitune_trt_aot.engine_errors import WATCH_ENV, process_watch
    from benchmarks.run import engine_error_check

    monkeypatch.delenv(WATCH_ENV, raising=False)
    with engine_error_check("ours-fp32-nographs-unchecked"):
        assert process_watch() is None
    assert WATCH_ENV not in os.environ
    monkeypatch.setenv(WATCH_ENV, "1")
    with engine_error_check("ours-fp32-nographs"):
        assert os.environ[WATCH_ENV] == "1"


def test_the_pt2_tune_profile_splits_the_package_compile_into_its_parts() -> None:
    """The profile's timer: export = save minus the package call, codegen = aot_compile minus the C++ commands.

    Commands that ran side by side (the wrapper's runtime beside its model's half) count once.
    """
    from benchmarks.pt2_tune_profile import PackageTimer, _command_label

    timer = PackageTimer()
    timer.seconds = {"save": 5.0, "aoti_compile_and_package": 4.5, "aot_compile": 4.0, "package": 0.25}
    timer._spans = [(10.0, 11.5), (10.5, 12.0), (13.0, 14.0)]  # 1.5 s and 1.5 s overlapping, then 1 s
    assert timer.parts() == {"c++ commands": 3.0, "package": 0.25, "export": 0.5, "codegen": 1.0}
    assert _command_label(f".{'a' * 64}.x1y2.tmp.o") == "wrapper runtime"
    assert _command_label(".chash.wrapper.x1y2.tmp.o") == "wrapper.o (join)"
    assert _command_label("chash.wrapper.model.o") == "wrapper.model.o"
    with timer.active():  # wraps and restores
        from aitune_trt_aot.formats import aot_inductor

        assert aot_inductor.AotInductorFormat.save.__name__ == "timed"
        announced: list[bool] = []
        # what the save step reuses is recorded; the save's own arguments pass through
        with aot_inductor.reused_objects(before_commands=lambda: announced.append(True)) as reused:
            reused.append("w.wrapper.o")
    assert aot_inductor.AotInductorFormat.save.__name__ == "save"
    assert aot_inductor.reused_objects.__name__ == "reused_objects" and timer.reused == ["w.wrapper.o"]


def test_the_pt2_tune_profile_names_lighter_halves_and_what_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels say a model half used the lighter headers, a link the stubs; what failed is listed with why."""
    from aitune_trt_aot.pt2.compiler import FAILED
    from aitune_trt_aot.pt2.wrapper_split import RUNTIME_FOLDER
    from benchmarks.pt2_tune_profile import _how, remembered_failures

    folder = tmp_path / RUNTIME_FOLDER
    assert _how(["g++", f"-I{folder}/lean-0123", "m.cpp", "-c", "-o", "m.o"]) == " (lighter headers)"
    assert _how(["g++", "m.cpp", "-c", "-o", "m.o"]) == ""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert remembered_failures() == []
    (folder / "lean-0123").mkdir(parents=True)
    (folder / "lean-0123" / FAILED).write_text("error: no such option\n")
    assert remembered_failures() == ["lighter headers (lean-0123): error: no such option"]
    assert _how(["g++", "w.o", "-shared", f"-L{folder}/link-stubs/abc/torch_cpu", "-o", "w.so"]) == " (stubs)"
    (folder / "link-stubs" / "abc").mkdir(parents=True)
    (folder / "link-stubs" / "abc" / "failed").write_text("ld: TLS reference mismatches\n")
    assert remembered_failures()[1] == "link stubs (abc): ld: TLS reference mismatches"


def test_timing_in_turn_times_every_row_each_round_and_keeps_the_median() -> None:
    """Rounds go through every row in turn; each row keeps the median of its first timing and its rounds."""
    from benchmarks.run import Row, retime_in_turn

    first, second = Row("mlp", "a", 1), Row("mlp", "b", 8)
    first.median_ms, first.p90_ms, second.median_ms, second.p90_ms = 9.0, 9.5, 1.0, 1.5
    order: list[str] = []
    times = {"a": iter([1.0, 2.0, 3.0]), "b": iter([2.0, 2.0, 2.0])}

    def timer(call) -> tuple[float, float]:
        name = call()
        order.append(name)
        value = next(times[name])
        return value, value + 0.5

    retime_in_turn([(first, lambda: "a"), (second, lambda: "b")], rounds=3, timer=timer)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert first.median_ms == 2.5 and first.p90_ms == 3.0  # median of 9, 1, 2, 3
    assert second.median_ms == 2.0 and second.throughput == 8 / (2.0 / 1e3)


def test_the_call_overhead_benchmark_prints_its_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``benchmarks.call_overhead`` runs on the CPU and prints one row per step (times not checked)."""
    from benchmarks import call_overhead

    monkeypatch.setattr("sys.argv", ["call_overhead", "--calls", "10", "--rounds", "1"])
    assert call_overhead.main() == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and "the whole Pt2Model call" in rows[-1], rows


def test_the_package_setup_benchmark_alternates_modes_and_prints_its_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``benchmarks.package_setup`` alternates the two modes after one untimed run; its table has one row each.

    Each run is a fresh process compiling a package (a minute on the CPU machine): here each run's result is given,
    to check the order and the arithmetic (commands are left out of the time); the real runs are the benchmark's.
    """
    from benchmarks import package_setup

    order: list[str] = []

    def one_run(mode: str, cache: str) -> dict[str, float]:
        order.append(mode)
        return {"total": 3.0 if mode == "left in" else 2.5, "commands": 2.0}

    monkeypatch.setattr(package_setup, "one_run", one_run)
    monkeypatch.setattr("sys.argv", ["package_setup", "--rounds", "2"])
    assert package_setup.main() == 0
    assert order == ["skipped", "skipped", "left in", "skipped", "left in"]
    table = capsys.readouterr().out
    assert "| skipped | 0.50, 0.50 | 0.50 |" in table and "| left in | 1.00, 1.00 | 1.00 |" in table


def test_the_link_time_benchmark_times_both_links_of_a_real_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``benchmarks.link_time`` compiles a CPU package, then runs its link as written and against stubs."""
    from benchmarks import link_time

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setattr("sys.argv", ["link_time", "--rounds", "1"])
    assert link_time.main() == 0
    out = capsys.readouterr().out
    assert "stubs of: torch_cpu" in out and "| as written |" in out and "| against stubs |" in out
