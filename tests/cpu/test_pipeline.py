"""CPU: whole builds through the pipeline, with a tracing frontend and a ``torch.save`` format registered.

What is shown here is the orchestration (which steps run, in which order, on what, with which error and hint),
never TensorRT: ``tests/support/fake_build.py`` registers a frontend that traces the module and a format that
pickles it, one registry line each. The GPU tiers show the same paths with Torch-TensorRT.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aitune.torch as ait
import pytest
import torch
from aitune.torch.backend import TorchEagerBackend
from torch import nn

import aitune_trt_aot
from aitune_trt_aot import (
    BuildError,
    ConfigError,
    InputShapeError,
    MissingRequirementError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    TorchTensorRTAotBuildStep,
    build_cache,
    cache_lock,
)
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.engine_errors import CheckedEngines
from aitune_trt_aot.files import file_digest
from aitune_trt_aot.pipeline import BuildJob, run_build
from aitune_trt_aot.precision import PrecisionBoundary
from tests.support.fake_build import (
    CPU_TOOLKIT,
    GeneralTracedFrontend,
    TorchSaveFormat,
    TracedEngines,
    TracedFrontend,
    register_fakes,
)
from tests.support.gpu import selected_backends
from tests.support.models import MLP, BatchBranchMLP, TwoInputs
from tests.support.recording import record, sample_store, two_inputs_call
from tests.support.tuning import strategy_for

CPU = torch.device("cpu")
STEPS = ["cache_lookup", "compile", "artifact_save", "artifact_load", "self_check", "first_calls", "kernel_cache_save"]


def _model(seed: int = 0, cls: type[nn.Module] = MLP) -> nn.Module:
    torch.manual_seed(seed)
    return cls().eval()


def _calls(*batches: int) -> list[tuple[tuple, dict]]:
    torch.manual_seed(100)
    return [((torch.randn(batch, 64),), {}) for batch in batches]


def _config(**fields: Any) -> TorchTensorRTAotBackendConfig:
    return TorchTensorRTAotBackendConfig(**{"ir": "cpu_trace", **fields})


def _build(
    tmp_path: Path,
    module: nn.Module,
    config: TorchTensorRTAotBackendConfig | None = None,
    calls: list | None = None,
    samples: list | None = None,
    name: str = "build",
) -> TorchTensorRTAotBackend:
    """Build with AITune's lifecycle (``backend.build``) from ``calls`` (default: batch 1 and 16), on the CPU."""
    calls = calls or _calls(1, 16)
    backend = TorchTensorRTAotBackend(config or _config())
    out = tmp_path / name
    out.mkdir(parents=True)
    backend.build(module, record(module, calls), sample_store(samples or calls, out / "recorded"), CPU, out)
    return backend


def _build_error(tmp_path: Path, module: nn.Module, **kwargs: Any) -> str:
    """The message of the BuildError a :func:`_build` raises."""
    with pytest.raises(BuildError) as raised:
        _build(tmp_path, module, **kwargs)
    return str(raised.value)


def _cache_entries() -> list[Path]:
    root = build_cache.cache_root()
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


# --- a fresh build, saved, reloaded and checked -----------------------------------------------------------------


def test_tune_save_and_load_run_the_saved_artifact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ait.tune builds through every step; what runs is the file loaded back; ait.save and ait.load run it again."""
    artifact_format = register_fakes(monkeypatch, TracedFrontend())
    reference = _model()
    model = ait.Module(
        copy.deepcopy(reference), "mlp-pipeline", strategy=strategy_for(TorchTensorRTAotBackend(_config()))
    )
    ait.tune(
        model, [torch.randn(64) for _ in range(3)], batch_sizes=[1, 16], device="cpu", ignore_failing_modules=False
    )
    (backend,) = selected_backends(model)
    assert list(backend.build_seconds) == STEPS
    assert backend.checked_shapes[0] == [(1, 64)] and [(16, 64)] in backend.checked_shapes
    assert (backend.artifact_format, backend.precision, backend.built_from_cache) == ("torch_save", "fp32", False)
    assert isinstance(backend.runner, CheckedEngines) and isinstance(backend.runner.runner, TracedEngines)
    assert artifact_format.loads == [backend.artifact_path], "the self-check ran the artifact loaded from disk"
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(InputShapeError, match="dimension 0 is 17, outside the built range 1..16"):
        backend.infer(torch.randn(17, 64))

    path = aitune_trt_aot.save(model, tmp_path / "mlp.ait")
    loaded = ait.load(ait.Module(_model(seed=1), "mlp-pipeline", strategy=strategy_for(TorchEagerBackend())), path)
    (reloaded,) = selected_backends(loaded)
    assert isinstance(reloaded, TorchTensorRTAotBackend) and len(artifact_format.loads) == 2
    assert reloaded.coverage == backend.coverage
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x))


def test_run_build_is_the_steps_in_order_without_a_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline alone: built-in values and keyword tensors captured, each step reported once, in order."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    module = _model(cls=TwoInputs)
    calls = [two_inputs_call(1), two_inputs_call(16)]
    steps: list[TorchTensorRTAotBuildStep] = []

    @contextlib.contextmanager
    def track(step: TorchTensorRTAotBuildStep):
        steps.append(step)
        yield {"step": step}

    job = BuildJob(_config(), module, record(module, calls), sample_store(calls, tmp_path), CPU, tmp_path / "out")
    build = run_build(job, CPU_TOOLKIT, track)
    assert [s.name for s in steps] == [
        "CACHE_LOOKUP", "COMPILE", "ARTIFACT_SAVE", "ARTIFACT_LOAD", "SELF_CHECK", "KERNEL_CACHE_SAVE"
    ]  # fmt: skip
    assert frontend.requests[0].sample[1].keys() == {"bias"}, "scale=0.5 is built in, not an input"
    assert build.entry.shape_guard.constants == {"scale": 0.5} and not build.from_cache
    assert build.entry.artifact.path == tmp_path / "out" / "model.pt"
    assert build.entry.checksum == file_digest(build.entry.artifact.path)
    (x, y), kwargs = two_inputs_call(7)
    with torch.no_grad():
        torch.testing.assert_close(build.activation.runner(x, y, bias=kwargs["bias"]), module(x, y, **kwargs))
    assert len(_cache_entries()) == 1, "the checked build is stored in the build cache"


def test_a_registered_ir_and_format_build_through_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding an IR or a format is a module and one registry line: config accepts the names, the pipeline builds."""
    with pytest.raises(ConfigError, match="Unknown ir 'cpu_trace'"):
        _config()
    register_fakes(monkeypatch, TracedFrontend())
    assert _config().output_format == "auto"
    backend = _build(tmp_path, _model(), _config(output_format="torch_save"))
    assert backend.artifact_format == "torch_save" and backend.artifact_path.suffix == ".pt"
    with pytest.raises(ConfigError, match="ir='dynamo' cannot write output_format='torch_save'.*needs ir='cpu_trace'"):
        TorchTensorRTAotBackendConfig(output_format="torch_save")


# --- the build cache --------------------------------------------------------------------------------------------


def test_a_second_build_reuses_the_cache_without_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An identical build is taken from the cache: copied, loaded and checked on one call, never compiled."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    first = _build(tmp_path, _model(), name="first")
    second = _build(tmp_path, _model(), name="second")
    assert len(frontend.requests) == 1
    assert second.built_from_cache and not first.built_from_cache
    assert second._build_results[0]["cache_hit"] is True
    assert list(second.build_seconds) == ["cache_lookup", "artifact_load", "self_check"]
    assert second.checked_shapes == [], "the cache's one-call check records no shapes"
    assert second.artifact_path.parent == tmp_path / "second"
    assert file_digest(second.artifact_path) == file_digest(first.artifact_path)
    x = torch.randn(3, 64)
    torch.testing.assert_close(second.infer(x), first.infer(x))


def test_a_cached_build_that_fails_its_check_is_dropped_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry holding another model's artifact (checksum made to match) fails the check: dropped, rebuilt, stored."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    _build(tmp_path, _model(seed=0), name="seed0")
    (entry,) = _cache_entries()
    _build(tmp_path, _model(seed=1), name="seed1")
    (other,) = [p for p in _cache_entries() if p != entry]
    facts = json.loads((entry / build_cache.ENTRY_FILE).read_text())
    artifact = entry / facts["artifact_name"]
    artifact.write_bytes((other / facts["artifact_name"]).read_bytes())
    (entry / build_cache.ENTRY_FILE).write_text(json.dumps(facts | {"checksum": file_digest(artifact)}))

    rebuilt = _build(tmp_path, _model(seed=0), name="again")
    assert rebuilt._build_results[0]["cache_hit"] is True
    assert not rebuilt.built_from_cache and "compile" in rebuilt.build_seconds
    assert len(frontend.requests) == 3
    stored = json.loads((entry / build_cache.ENTRY_FILE).read_text())
    assert stored["checksum"] == file_digest(rebuilt.artifact_path) == file_digest(entry / stored["artifact_name"])


def test_a_damaged_cache_entry_is_a_miss_and_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached artifact cut short is removed at lookup; the build compiles and stores a good entry again."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    _build(tmp_path, _model(), name="first")
    (entry,) = _cache_entries()
    artifact = entry / json.loads((entry / build_cache.ENTRY_FILE).read_text())["artifact_name"]
    artifact.write_bytes(artifact.read_bytes()[:100])
    again = _build(tmp_path, _model(), name="again")
    assert again._build_results[0]["cache_hit"] is False and not again.built_from_cache
    assert len(frontend.requests) == 2
    assert file_digest(artifact) == file_digest(again.artifact_path)


def _job(tmp_path: Path, name: str) -> BuildJob:
    module, calls, out = _model(), _calls(1, 16), tmp_path / name
    return BuildJob(_config(), module, record(module, calls), sample_store(calls, out), CPU, out)


def _another_process_builds(
    monkeypatch: pytest.MonkeyPatch, finish: Callable[[cache_lock.BuildLock], None] | None
) -> threading.Thread:
    """Another process building the entry the cache holds now: holds its lock, then publishes or ``finish``es.

    ``finish`` None: the entry is published. The entry is moved out of the cache first, so a build started
    meanwhile misses it and finds the lock; the lock is held until that build has looked the entry up twice (it
    is waiting), and 0.3 s more.
    """
    root = build_cache.cache_root()
    (entry,) = _cache_entries()
    aside = root.parent / "built-elsewhere"
    entry.rename(aside)
    turn = cache_lock.take_turn(root, entry.name, lambda: None)
    lookups: list[str] = []
    lookup = build_cache.lookup
    monkeypatch.setattr(build_cache, "lookup", lambda key: lookups.append(key) or lookup(key))

    def publish(lock: cache_lock.BuildLock) -> None:
        aside.rename(entry)
        lock.release()

    def hold() -> None:
        deadline = time.monotonic() + 60
        while len(lookups) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        (finish or publish)(turn.lock)

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def test_a_build_waits_for_the_process_building_the_same_entry_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the entry's build lock: this build waits, then loads and checks what it published."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    run_build(_job(tmp_path, "earlier"), CPU_TOOLKIT)
    builder = _another_process_builds(monkeypatch, None)
    results: list[dict] = []

    @contextlib.contextmanager
    def track(step: TorchTensorRTAotBuildStep):
        results.append({"step": step})
        yield results[-1]

    with caplog.at_level(logging.INFO, logger="aitune_trt_aot"):
        build = run_build(_job(tmp_path, "waiting"), CPU_TOOLKIT, track)
    builder.join()
    assert build.from_cache and len(frontend.requests) == 1
    assert results[0]["cache_hit"] is True and results[0]["waited_seconds"] > 0.3
    messages = [r.getMessage() for r in caplog.records]
    assert any(": waiting for the build of process " in m for m in messages)
    assert any(": reusing the build of process " in m for m in messages)


def test_a_failed_build_in_another_process_fails_this_build_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process holding the lock fails: this build raises a BuildError with its error, and compiles nothing."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    run_build(_job(tmp_path, "earlier"), CPU_TOOLKIT)
    builder = _another_process_builds(monkeypatch, lambda lock: lock.fail(RuntimeError("out of workspace")))
    with pytest.raises(BuildError) as raised:
        run_build(_job(tmp_path, "waiting"), CPU_TOOLKIT)
    builder.join()
    message = str(raised.value)
    assert "waited for the build of this model by process" in message
    assert "which failed: RuntimeError: out of workspace. Every process sharing the build cache" in message
    assert len(frontend.requests) == 1


def test_a_cache_folder_that_cannot_be_written_only_costs_the_sharing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lock can be created where the cache folder is a file: the build runs here, unlocked, and stands."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(build_cache.CACHE_DIR_ENV, str(blocker / "builds"))
    backend = _build(tmp_path, _model())
    assert not backend.built_from_cache and len(frontend.requests) == 1


def test_build_cache_off_neither_looks_up_nor_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_cache=False: no lookup step, nothing stored."""
    register_fakes(monkeypatch, TracedFrontend())
    backend = _build(tmp_path, _model(), _config(build_cache=False))
    assert "cache_lookup" not in backend.build_seconds and _cache_entries() == []


# --- precision: the autocast -> cast_module fallback -----------------------------------------------------------


def test_autocast_failure_falls_back_to_the_cast_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """precision_route='auto': autocast fails, the module is cast instead, with a warning; the result is checked."""
    frontend = TracedFrontend(fail_autocast=True)
    register_fakes(monkeypatch, frontend)
    with caplog.at_level(logging.WARNING, logger="aitune_trt_aot.pipeline.compile"):
        backend = _build(tmp_path, _model(), _config(precision="bf16"))
    assert backend.precision == "cast_module(bfloat16)"
    assert [r.settings.enable_autocast for r in frontend.requests] == [True, False]
    cast = frontend.requests[1].module
    assert isinstance(cast, PrecisionBoundary) and cast.input_dtype == torch.bfloat16
    assert any("building with the module cast" in r.getMessage() for r in caplog.records)
    assert backend.infer(torch.randn(2, 64)).dtype == torch.float32, "the boundary keeps eager's output dtype"


@pytest.mark.parametrize(
    "fields",
    [{"precision_route": "autocast"}, {"compile_config": {"enable_autocast": True}}],
    ids=["route-autocast", "user-autocast"],
)
def test_autocast_chosen_by_the_user_does_not_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict
) -> None:
    """Autocast asked for explicitly fails as a BuildError naming the plan and the IR to try."""
    frontend = TracedFrontend(fail_autocast=True)
    register_fakes(monkeypatch, frontend)
    message = _build_error(tmp_path, _model(), config=_config(precision="bf16", **fields))
    assert message.startswith("Torch-TensorRT could not build ir=cpu_trace format=torch_save precision=autocast")
    assert "'SymInt' object has no attribute 'to'." in message
    assert message.endswith("Try ir='dynamo', which handles more models.")
    assert len(frontend.requests) == 1


# --- refusals and hints -----------------------------------------------------------------------------------------


def test_a_build_without_engines_is_refused_before_saving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Zero TensorRT engines: a BuildError naming min_block_size and the fix; no artifact is written."""
    artifact_format = register_fakes(monkeypatch, TracedFrontend(coverage=Coverage(0, 0, 3)))
    message = _build_error(tmp_path, _model())
    assert "built no TensorRT engine: all 3 operations of this graph stay in PyTorch" in message
    assert "min_block_size=5 convertible operations" in message and "min_block_size=1" in message
    assert not list((tmp_path / "build").glob("model*")) and artifact_format.loads == []
    assert _cache_entries() == []


def test_a_mismatch_on_a_recorded_call_names_the_ir_to_try(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Engines that are wrong everywhere fail on the first recorded call; nothing is cached."""
    register_fakes(monkeypatch, TracedFrontend(offset=1.0))
    message = _build_error(tmp_path, _model())
    assert "do not reproduce eager PyTorch on a recorded input (shapes [(1, 64)], call 1 of 3:" in message
    assert message.endswith("Try ir='dynamo'.")
    assert _cache_entries() == []


@pytest.mark.parametrize("split", [True, False], ids=["split", "whole"])
def test_a_mismatch_of_the_general_ir_names_the_split_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    """For the general IR a split graph gets the split-graph fix; a whole one the known-issues pointer."""
    coverage = Coverage(2, 6, 1) if split else None
    register_fakes(monkeypatch, GeneralTracedFrontend(coverage=coverage, offset=1.0))
    message = _build_error(tmp_path, _model(), config=TorchTensorRTAotBackendConfig())
    if split:
        assert "This graph is split: 2 TensorRT engines, 6 ops in TensorRT, 1 in PyTorch." in message
        assert "Wrap only the parts TensorRT converts in ait.Module" in message
    else:
        assert message.endswith("or keep this model eager; docs/known-issues.md lists what was measured.")


def _build_raised(
    tmp_path: Path, module: nn.Module, recorded: list, top: int, name: str = "raised"
) -> TorchTensorRTAotBackend:
    """Build from ``recorded`` calls for a batch range raised to ``top`` (AITune's find-max-batch-size step)."""
    backend = TorchTensorRTAotBackend(_config())
    out = tmp_path / name
    out.mkdir()
    spec = record(module, recorded)
    spec.update_max_batch_size(recorded[0], top)
    backend.build(module, spec, sample_store(recorded, out / "recorded"), CPU, out)
    return backend


def test_engines_wrong_only_near_the_range_top_are_built_for_the_largest_range_they_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Engines wrong above batch 40 in a range AITune raised to 1..100: built again for 1..40, calls above refused."""
    frontend = TracedFrontend(offset=1.0, wrong_above=40)
    register_fakes(monkeypatch, frontend)
    backend = _build_raised(tmp_path, _model(), _calls(1, 4), top=100)
    assert [r.ranges[0].max_shape[0] for r in frontend.requests] == [100, 40], "built, searched, built again"
    assert backend.checked_shapes[-1] == [(40, 64)]
    assert "the largest range they do reproduce it on is x [1..40, 64] float32" in caplog.text
    assert torch.equal(backend.infer(torch.ones(40, 64)), backend.infer(torch.ones(40, 64)))
    with pytest.raises(InputShapeError, match="dimension 0 is 41, outside the built range 1..40"):
        backend.infer(torch.randn(41, 64))
    saved = backend.to_dict()
    assert "40" in json.dumps(saved["shape_guard"], default=str), "the checkpoint records the narrowed range"


@pytest.mark.parametrize(
    "failure",
    [{"raises_above": 40}, {"offset": 1.0, "wrong_above": 40, "wrong_sticks": True}],
    ids=["raises", "wrong-without-error"],
)
def test_engines_a_failed_call_at_the_top_leaves_failing_are_searched_on_fresh_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: dict
) -> None:
    """Engines failing above 40, then at every size they had not run (raising, or wrong without an error): 1..40.

    On an H100 (2026-12-07) the fp32 token encoder's engines for 1..262144 failed at 262144, raising
    ``EngineCallError`` in one run and returning other numbers with nothing logged in another, and then failed the
    same way at every size they had not run before; judged on those engines, the search found nothing. Each candidate
    after a failure is judged on engines loaded afresh: here, without that, every candidate below 100 would fail.
    """
    frontend = TracedFrontend(**failure)
    register_fakes(monkeypatch, frontend)
    backend = _build_raised(tmp_path, _model(), _calls(1, 4), top=100)
    assert [r.ranges[0].max_shape[0] for r in frontend.requests] == [100, 40], "built, searched, built again"
    assert backend.checked_shapes[-1] == [(40, 64)]
    with pytest.raises(InputShapeError, match="outside the built range 1..40"):
        backend.infer(torch.randn(41, 64))


def test_a_search_that_finds_nothing_says_what_it_tried() -> None:
    """The refusal after a fruitless search lists each candidate and what it gave."""
    from aitune_trt_aot.pipeline.self_check import Mismatch, refuse_mismatch

    plan = SimpleNamespace(precision=SimpleNamespace(quantized=None), frontend=SimpleNamespace(name="dynamo"),
                           describe=lambda: "ir=dynamo")  # fmt: skip
    mismatch = Mismatch(False, "shapes [(100, 64)], call 1: it raised EngineCallError: ...", ((100, 64),))
    tried = ["shapes [(50, 64)]: fail (it raised EngineCallError)", "shapes [(4, 64)]: fail (differs by 1.0)"]
    with pytest.raises(BuildError) as refused:
        refuse_mismatch(mismatch, plan, Coverage(1, 3, 0), tried)
    assert (
        "A search for a smaller range found none the engines reproduce eager PyTorch at; it tried: shapes "
        "[(50, 64)]: fail (it raised EngineCallError); shapes [(4, 64)]: fail (differs by 1.0)." in str(refused.value)
    )


def test_aitune_is_told_the_built_batch_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AITune checks a backend at its graph's largest batch after the build: that must be the built one (40)."""
    register_fakes(monkeypatch, TracedFrontend(offset=1.0, wrong_above=40))
    module = _model()
    spec = record(module, _calls(1, 4))
    spec.update_max_batch_size(_calls(1)[0], 100)
    assert spec.get_max_batch_size() == 100
    out = tmp_path / "told"
    out.mkdir()
    TorchTensorRTAotBackend(_config()).build(module, spec, sample_store(_calls(1, 4), out / "recorded"), CPU, out)
    assert spec.get_max_batch_size() == 40


def test_a_forward_branching_above_batch_8_is_built_for_1_to_8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traced at batch 1 and 2, a forward that doubles its output above batch 8 is right up to 8: built for 1..8."""
    register_fakes(monkeypatch, TracedFrontend())
    backend = _build_raised(tmp_path, _model(cls=BatchBranchMLP), _calls(1, 2), top=16)
    assert backend.checked_shapes[-1] == [(8, 64)]
    with pytest.raises(InputShapeError, match="outside the built range 1..8"):
        backend.infer(torch.randn(9, 64))


def test_engines_wrong_at_every_raised_size_keep_the_recorded_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong at every size above the recorded ones: the range is cut back to the largest recorded size (1..2)."""
    register_fakes(monkeypatch, TracedFrontend(offset=1.0, wrong_above=2))
    backend = _build_raised(tmp_path, _model(), _calls(1, 2), top=16)
    assert backend.checked_shapes[-1] == [(2, 64)]
    with pytest.raises(InputShapeError, match="outside the built range 1..2"):
        backend.infer(torch.randn(3, 64))


def test_a_raised_range_tensorrt_cannot_build_is_halved_until_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No engines above batch 40 in a range AITune raised to 1..100: built, checked and guarded for 1..25.

    The recorded sizes are compiled first, then the range is halved from the top (50 fails, 25 builds); AITune is
    told 25.
    """
    frontend = TracedFrontend(fails_above=40)
    register_fakes(monkeypatch, frontend)
    module = _model()
    spec = record(module, _calls(1, 4))
    spec.update_max_batch_size(_calls(1)[0], 100)
    out = tmp_path / "halved"
    out.mkdir()
    backend = TorchTensorRTAotBackend(_config())
    backend.build(module, spec, sample_store(_calls(1, 4), out / "recorded"), CPU, out)
    assert [r.ranges[0].max_shape[0] for r in frontend.requests] == [100, 4, 50, 25]
    assert backend.checked_shapes[-1] == [(25, 64)]
    assert spec.get_max_batch_size() == 25
    assert "TensorRT could not build engines for the requested range (x [1..100, 64] float32)" in caplog.text
    assert "the largest range it builds is x [1..25, 64] float32" in caplog.text
    with pytest.raises(InputShapeError, match="dimension 0 is 26, outside the built range 1..25"):
        backend.infer(torch.randn(26, 64))


def test_a_raised_range_recorded_at_batch_1_alone_is_searched_from_batch_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AITune keeps one recorded call by default, often batch 1: the first try is 1..2, never 1..1.

    torch.export gives a dynamic axis the range [2, ...] and Torch-TensorRT refuses an input range below it, so a
    first try at 1..1 failed on the GPU and ended the search (the fp32 token encoder on an H100, 2026-12-07).
    """
    frontend = TracedFrontend(fails_above=40)
    register_fakes(monkeypatch, frontend)
    module = _model()
    spec = record(module, _calls(1, 4))  # the graph saw batch 1 and 4; only the first call is stored
    spec.update_max_batch_size(_calls(1)[0], 100)
    out = tmp_path / "from-2"
    out.mkdir()
    backend = TorchTensorRTAotBackend(_config())
    backend.build(module, spec, sample_store(_calls(1), out / "recorded"), CPU, out)
    assert [r.ranges[0].max_shape[0] for r in frontend.requests] == [100, 2, 50, 25]
    assert backend.checked_shapes[-1] == [(25, 64)]


def test_a_build_failure_the_recorded_sizes_share_is_raised_after_one_more_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compile that fails at every size (not the range's fault) is raised as it was, after one try at the floor."""
    frontend = TracedFrontend(fails_above=0)
    register_fakes(monkeypatch, frontend)
    with pytest.raises(BuildError, match="engine build failed") as raised:
        _build_raised(tmp_path, _model(), _calls(1, 4), top=100)
    assert [r.ranges[0].max_shape[0] for r in frontend.requests] == [100, 4]
    assert str(raised.value).startswith("Torch-TensorRT could not build ir=cpu_trace")
    assert "TensorRT reported: IBuilder::buildSerializedNetwork: Error Code 10" in str(raised.value), "the why"


def test_a_range_torch_export_proves_smaller_is_built_and_guarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frontend builds only up to a proven 64 of a requested 1..1000: the guard and checkpoint say 1..64."""
    frontend = TracedFrontend(proven_max=64)
    register_fakes(monkeypatch, frontend)
    backend = _build_raised(tmp_path, _model(), _calls(1, 4), top=1000)
    assert len(frontend.requests) == 1
    assert backend.checked_shapes[-1] == [(64, 64)]
    with pytest.raises(InputShapeError, match="dimension 0 is 65, outside the built range 1..64"):
        backend.infer(torch.randn(65, 64))
    assert backend.build_seconds["compile"] >= 0


def test_an_artifact_that_does_not_load_back_is_a_build_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The saved file is loaded before anything is checked; a failure names the format and what to try."""
    register_fakes(monkeypatch, TracedFrontend(), TorchSaveFormat(load_error=RuntimeError("unpickling failed")))
    message = _build_error(tmp_path, _model())
    assert message.startswith("The 'torch_save' artifact written by ir=cpu_trace")
    assert "cannot be loaded back (RuntimeError: unpickling failed). Try another output_format" in message


# --- quantized builds (precision="int8" / "fp8"; FP8 here: ModelOpt's INT8 export needs CUDA) --------------------


def _weights(module: nn.Module) -> dict[str, bytes]:
    """Every parameter and buffer of ``module`` as raw bytes (CPU), to compare byte for byte."""
    return {
        name: t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
        for name, t in module.state_dict().items()
    }


def test_an_fp8_build_compiles_a_calibrated_copy_and_leaves_the_users_module_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ait.tune with fp8: a quantized copy is compiled and checked; the user's weights are unchanged byte for byte.

    The layers counted come from the traced graph; the quantize step and its calibration are timed; save and load
    keep the precision and the counts.
    """
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    monkeypatch.setattr(ait.config, "device_after_tuning", "cpu")  # AITune would empty the module onto meta
    monkeypatch.setattr(ait.config, "max_num_samples_stored", 8)
    user_module = _model()
    reference, before = copy.deepcopy(user_module), _weights(user_module)
    model = ait.Module(user_module, "mlp-fp8", strategy=strategy_for(TorchTensorRTAotBackend(_config(precision="fp8"))))
    ait.tune(
        model, [torch.randn(64) for _ in range(6)], batch_sizes=[1, 16], device="cpu", ignore_failing_modules=False
    )
    (backend,) = selected_backends(model)
    assert _weights(user_module) == before, "the user's module was not quantized, cast or calibrated in place"
    assert not any(name.endswith("_quantizer") for name, _ in user_module.named_modules())
    assert backend.precision == "fp8(rest float16)"
    assert backend.coverage.layers == {"fp8": 3, "unquantized": 0}
    assert "layers: 3 fp8, 0 unquantized (16/32-bit)" in backend.describe()
    assert list(backend.build_seconds)[:3] == ["cache_lookup", "quantize", "calibration"]
    quantize_step = next(r for r in backend._build_results if r["step"] is TorchTensorRTAotBuildStep.QUANTIZE)
    assert quantize_step["recipe"] == "FP8_DEFAULT_CFG" and quantize_step["calibration_samples"]
    compiled = frontend.requests[0]
    assert compiled.quantized and isinstance(compiled.module, PrecisionBoundary)
    assert compiled.module.input_dtype == torch.float16
    assert any(name.endswith("input_quantizer") for name, _ in compiled.module.named_modules())
    x = torch.randn(5, 64)
    with torch.no_grad():
        tuned, eager = model(x), reference(x)
    assert (
        tuned.dtype == torch.float32
        and torch.nn.functional.cosine_similarity(tuned.flatten(), eager.flatten(), 0) > 0.99
    )

    path = aitune_trt_aot.save(model, tmp_path / "mlp-fp8.ait")
    loaded = ait.load(ait.Module(_model(seed=1), "mlp-fp8", strategy=strategy_for(TorchEagerBackend())), path)
    (reloaded,) = selected_backends(loaded)
    assert (reloaded.precision, reloaded.coverage, reloaded.config) == (
        backend.precision,
        backend.coverage,
        backend.config,
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tuned)


def test_a_quantized_build_keeps_built_in_values_and_keyword_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model with a keyword tensor and a built-in float: calibration passes them, the copy takes the stripped call."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    module = _model(cls=TwoInputs)
    calls = [two_inputs_call(1), two_inputs_call(4), two_inputs_call(16)]
    backend = _build(tmp_path, module, _config(precision="fp8"), calls=calls)
    assert frontend.requests[0].sample[1].keys() == {"bias"}, "scale=0.5 is built in, not an input"
    assert backend.coverage.layers == {"fp8": 3, "unquantized": 0}
    (x, y), kwargs = two_inputs_call(7)
    with torch.no_grad():
        got, want = backend.infer(x, y, bias=kwargs["bias"], scale=0.5), module(x, y, **kwargs)
    assert torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), 0) > 0.99


def test_calibration_runs_evenly_spaced_recorded_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """calibration_samples=3 of 5 recorded calls: the first, the middle and the last, said in the log."""
    register_fakes(monkeypatch, TracedFrontend())
    config = _config(precision="fp8", quantization={"calibration_samples": 3, "unquantized_precision": "fp32"})
    with caplog.at_level(logging.INFO, logger="aitune_trt_aot.pipeline.quantize"):
        backend = _build(tmp_path, _model(), config, calls=_calls(1, 2, 4, 8, 16))
    step = next(r for r in backend._build_results if r["step"] is TorchTensorRTAotBuildStep.QUANTIZE)
    assert step["calibration_samples"] == [0, 2, 4]
    assert backend.precision == "fp8(rest float32)"
    assert "calibrated on 3 of 5 recorded call(s)" in caplog.text
    assert "Calibrating fp8 on 3 recorded call(s) of this graph" in caplog.text, "few samples: how to record more"


def test_quantized_engines_that_lose_accuracy_are_refused_naming_metric_value_and_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engines whose outputs are off are a BuildError naming the metric, its value and threshold, and what to do."""
    register_fakes(monkeypatch, TracedFrontend(offset=1.0))
    message = _build_error(tmp_path, _model(), config=_config(precision="fp8"))
    assert "precision=fp8(rest float16)" in message and "do not reproduce eager PyTorch on a recorded input" in message
    assert re.search(
        r"output 0 of the fp8 engines has cosine similarity 0\.\d+ to eager, below quantization "
        r"min_cosine=0\.99",
        message,
    ), message
    assert "Build with precision='fp16' (or 'bf16')" in message and "QuantizationConfig(exclude=[...])" in message
    assert _cache_entries() == []


def test_impossibly_tight_thresholds_refuse_even_good_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """min_cosine=1 and max_relative_error=0: 8-bit rounding alone fails them; the same build passes the defaults."""
    register_fakes(monkeypatch, TracedFrontend())
    tight = _config(precision="fp8", quantization={"min_cosine": 1.0, "max_relative_error": 0.0})
    message = _build_error(tmp_path, _model(), config=tight)
    assert re.search(r"(min_cosine=1 |max_relative_error=0 )", message), message
    assert _build(tmp_path, _model(), _config(precision="fp8"), name="default").coverage.quantized_layers() == 3


def test_a_quantized_build_without_a_quantized_layer_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph whose layers all compute in 16 bit is a 16-bit build named fp8: refused before anything is saved.

    Excluding every layer is refused earlier, by ModelOpt, as a BuildError with the same advice.
    """
    artifact_format = register_fakes(monkeypatch, TracedFrontend(coverage=Coverage(1, 9, 0, layers={"unquantized": 3})))
    message = _build_error(tmp_path, _model(), config=_config(precision="fp8"))
    assert "precision=fp8(rest float16)" in message
    assert "quantized no layer: none of the 3 compute layers of the exported graph takes fp8 inputs" in message
    assert message.endswith("or build with precision='fp16'.")
    assert artifact_format.loads == [] and not list((tmp_path / "build").glob("model*"))

    message = _build_error(
        tmp_path, _model(), config=_config(precision="fp8", quantization={"exclude": ["net"]}), name="all"
    )
    assert message.startswith("ModelOpt could not quantize this model to fp8 with FP8_DEFAULT_CFG (RuntimeError: ")
    assert message.endswith("or build with precision='fp16'.")


def test_an_exclude_pattern_matching_nothing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt module name is a ConfigError naming the closest module, before anything is compiled."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    with pytest.raises(ConfigError, match="'nett.2': did you mean 'net.2'\\? Patterns are"):
        _build(tmp_path, _model(), _config(precision="fp8", quantization={"exclude": ["net.0", "nett.2"]}))
    assert frontend.requests == []


def test_fp8_on_a_gpu_below_compute_capability_8_9_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolkit's GPU (here an A100) decides: refused by the plan, naming the GPU; nothing quantized or compiled."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    a100 = dataclasses.replace(
        CPU_TOOLKIT, gpu=lambda device: {"gpu": "NVIDIA A100-PCIE-40GB", "compute_capability": "8.0"}
    )
    module, calls = _model(), _calls(1, 16)
    job = BuildJob(
        _config(precision="fp8"), module, record(module, calls), sample_store(calls, tmp_path), CPU, tmp_path / "out"
    )
    with pytest.raises(MissingRequirementError, match="this build's GPU, NVIDIA A100-PCIE-40GB, has 8.0"):
        run_build(job, a100)
    assert frontend.requests == []


def test_a_second_quantized_build_reuses_the_cache_without_quantizing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model and fp8 config again: the checked artifact is reused; no quantize step, no compile."""
    frontend = TracedFrontend()
    register_fakes(monkeypatch, frontend)
    first = _build(tmp_path, _model(), _config(precision="fp8"), name="first")
    second = _build(tmp_path, _model(), _config(precision="fp8"), name="second")
    assert second.built_from_cache and len(frontend.requests) == 1
    assert "quantize" not in second.build_seconds and second.coverage == first.coverage
    third = _build(tmp_path, _model(), _config(precision="fp8", quantization={"min_cosine": 0.98}), name="third")
    assert not third.built_from_cache, "another quantization is another build"
