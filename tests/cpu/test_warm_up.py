"""CPU: warm-up at activation: what the self-check records, which shapes a load warms, and the calls after ait.load.

After ``ait.load`` the warm-up calls must reach the loaded runner at the recorded shapes (the build pipeline with a
tracing frontend and a pickling format, ``tests/support/fake_build.py``).
"""

from __future__ import annotations

import copy
import json
import logging
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aitune.torch as ait
import pytest
import torch
from aitune.torch.backend import TorchEagerBackend

import aitune_trt_aot
from aitune_trt_aot import ConfigError, TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
from aitune_trt_aot.validation import tensor_shapes
from aitune_trt_aot.warm_up import AUTO_WARM_UP_SECONDS, WarmCall, chosen, warm_up
from tests.support.fake_build import TorchSaveFormat, TracedFrontend, register_fakes
from tests.support.gpu import selected_backends
from tests.support.models import MLP, TwoInputs
from tests.support.recording import record, sample_store, two_inputs_call
from tests.support.tuning import strategy_for

CPU = torch.device("cpu")


class RecordingRunner:
    """A loaded artifact that records the tensor shapes of every call reaching it."""

    def __init__(self, module: torch.nn.Module, calls: list[tuple[tuple[int, ...], ...]]) -> None:
        self.module, self.calls = module, calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(tensor_shapes((args, kwargs)))
        return self.module(*args, **kwargs)


class RecordingFormat(TorchSaveFormat):
    """:class:`TorchSaveFormat` whose loaded artifacts record their calls in ``calls`` (every load's)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], ...]] = []

    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        return RecordingRunner(super().load(path, device), self.calls)


# --- what is recorded and how it is called ------------------------------------------------------------------------


def test_a_warm_call_keeps_structure_shapes_and_plain_values_not_data() -> None:
    """Tensors become shape and dtype, plain values stay; the call made from it is zero-filled, same structure."""
    x, y, mask = torch.randn(3, 32), torch.randn(3, 16), torch.ones(3, 4, dtype=torch.bool)
    call = WarmCall.of(((x, [y, None]), {"mask": mask, "scale": 0.5}), 0.123456)
    assert call is not None and call.seconds == 0.1235
    assert call.shapes() == [(3, 32), (3, 16), (3, 4)]
    assert WarmCall.from_dict(json.loads(json.dumps(call.to_dict()))) == call, "JSON-safe (build cache entries)"
    (made_x, (made_y, nothing)), kwargs = call.call(CPU)
    assert nothing is None and kwargs["scale"] == 0.5
    assert [(t.shape, t.dtype) for t in (made_x, made_y, kwargs["mask"])] == [
        (x.shape, x.dtype),
        (y.shape, y.dtype),
        (mask.shape, torch.bool),
    ]
    assert not made_x.any() and not kwargs["mask"].any(), "zero-filled: no recorded data is kept"


def test_calls_whose_structure_cannot_be_stored_are_not_recorded() -> None:
    """A leaf that is not a tensor or plain value, or a namedtuple pytree cannot write: no record, no error."""
    assert WarmCall.of(((torch.zeros(1), object()), {}), 0.1) is None
    pair = namedtuple("Pair", "a b")  # noqa: PYI024  (a plain namedtuple, as users pass them)
    assert WarmCall.of(((pair(torch.zeros(1), torch.zeros(1)),), {}), 0.1) is None


def _calls(*seconds: float | None) -> list[WarmCall]:
    return [WarmCall.of(((torch.zeros(batch, 4),), {}), s) for batch, s in enumerate(seconds, start=1)]


def test_which_calls_a_load_warms() -> None:
    """True: all; False: none; "auto": in order, those whose build-time first calls fit the budget together."""
    calls = _calls(0.2, 0.4, 0.1, None, 0.15)
    assert chosen(calls, True) == calls and chosen(calls, False) == []
    assert AUTO_WARM_UP_SECONDS == 0.5
    assert [c.shapes() for c in chosen(calls, "auto")] == [[(1, 4)], [(3, 4)], [(5, 4)]]  # 0.2 + 0.1 + 0.15


def test_warm_up_calls_each_shape_once_and_goes_on_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    """Each call reaches the engines without gradients; a failing one is logged and left out of the report."""
    seen: list[Any] = []

    def engines(x: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(x.shape), torch.is_grad_enabled()))
        if x.shape[0] == 2:
            raise RuntimeError("kernel compile failed")
        return x

    with caplog.at_level(logging.WARNING):
        report = warm_up(engines, _calls(0.1, 0.1, 0.1), CPU)
    assert seen == [((1, 4), False), ((2, 4), False), ((3, 4), False)]
    assert report.shapes == [[(1, 4)], [(3, 4)]]
    assert [r.getMessage() for r in caplog.records] == [
        "Warm-up call at input shapes [(2, 4)] failed (RuntimeError: kernel compile failed); the first call at these "
        "shapes compiles its kernels."
    ]
    assert warm_up(engines, [], CPU).shapes == []


def test_warm_up_is_a_validated_config_choice() -> None:
    """True, False or "auto" (default); stored and described like every field; not part of what is built."""
    assert TorchTensorRTAotBackendConfig().warm_up == "auto"
    config = TorchTensorRTAotBackendConfig(warm_up=False)
    assert config.describe() == "warm_up=False"
    assert TorchTensorRTAotBackendConfig.from_dict(config.to_dict()) == config
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match=f"warm_up must be True, False or 'auto', got {bad!r}"):
            TorchTensorRTAotBackendConfig(warm_up=bad)


# --- through the pipeline and ait.load ----------------------------------------------------------------------------


def _tuned(
    monkeypatch: pytest.MonkeyPatch,
    warm: bool | str,
    module: torch.nn.Module,
    data: list,
    caller: Callable[[ait.Module], Callable[..., Any]] = lambda tuned: tuned,
) -> tuple[ait.Module, TorchTensorRTAotBackend, RecordingFormat]:
    """``module`` tuned on the CPU (batch 1 and 16) by the fake pipeline with ``warm_up=warm``, called by ``caller``."""
    artifact_format = RecordingFormat()
    register_fakes(monkeypatch, TracedFrontend(), artifact_format)
    config = TorchTensorRTAotBackendConfig(ir="cpu_trace", warm_up=warm)
    tuned = ait.Module(module, f"warm-{warm}", strategy=strategy_for(TorchTensorRTAotBackend(config)))
    ait.tune(caller(tuned), data, batch_sizes=[1, 16], device="cpu", ignore_failing_modules=False)
    (backend,) = selected_backends(tuned)
    return tuned, backend, artifact_format


def _reloaded(tmp_path: Path, tuned: ait.Module, module: torch.nn.Module) -> TorchTensorRTAotBackend:
    path = aitune_trt_aot.save(tuned, tmp_path / "model.ait")
    loaded = ait.load(ait.Module(module, tuned.name, strategy=strategy_for(TorchEagerBackend())), path)
    (backend,) = selected_backends(loaded)
    return backend


def test_after_ait_load_the_engines_are_called_at_each_checked_shape_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The self-check's shapes are kept in the checkpoint; ait.load calls the runner at each before any user call."""
    torch.manual_seed(0)
    reference = MLP().eval()
    tuned, built, artifact_format = _tuned(
        monkeypatch, True, copy.deepcopy(reference), [torch.randn(64) for _ in range(3)]
    )
    checked = built.checked_shapes
    assert built.warmed_shapes == [], "right after a build the self-check has called those shapes already"
    assert [call.shapes() for call in built._entry.warm_calls] == [list(shapes) for shapes in checked]
    assert all(call.seconds is not None for call in built._entry.warm_calls)

    artifact_format.calls.clear()
    backend = _reloaded(tmp_path, tuned, MLP().eval())
    assert [list(shapes) for shapes in artifact_format.calls] == [list(shapes) for shapes in checked]
    assert backend.warmed_shapes == [[tuple(s) for s in shapes] for shapes in checked]
    assert f"warmed {len(checked)} shapes" in backend.describe()

    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(backend.infer(x), reference(x))
    assert artifact_format.calls[-1] == ((5, 64),) and len(artifact_format.calls) == len(checked) + 1


def test_warm_up_goes_through_the_shape_guard_with_built_in_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyword tensors and a built-in value: warm calls are made as infer's are (the value checked, then dropped)."""
    torch.manual_seed(0)
    module = TwoInputs().eval()
    data = [{"x": torch.randn(32), "y": torch.randn(16), "bias": torch.randn(64)} for _ in range(2)]

    def caller(tuned: ait.Module) -> Callable[..., Any]:
        return lambda x, y, bias: tuned(x, y, bias=bias, scale=0.5)

    tuned, _, artifact_format = _tuned(monkeypatch, True, module, data, caller)
    artifact_format.calls.clear()
    backend = _reloaded(tmp_path, tuned, TwoInputs().eval())
    assert backend.warmed_shapes and len(artifact_format.calls) == len(backend.warmed_shapes)
    assert all(len(shapes) == 3 for shapes in artifact_format.calls), (
        "x, y and bias reach the runner; scale is built in"
    )


def test_no_warm_up_where_the_config_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """warm_up=False: ait.load calls nothing before the user does."""
    tuned, _, artifact_format = _tuned(monkeypatch, False, MLP().eval(), [torch.randn(64) for _ in range(3)])
    artifact_format.calls.clear()
    backend = _reloaded(tmp_path, tuned, MLP().eval())
    assert artifact_format.calls == [] and backend.warmed_shapes == []
    assert "warmed" not in backend.describe()


def test_the_self_check_records_a_warm_call_per_checked_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_build alone: the entry carries the calls (shapes, build-time first-call seconds), also from the cache."""
    from aitune_trt_aot.pipeline import BuildJob, run_build
    from tests.support.fake_build import CPU_TOOLKIT

    register_fakes(monkeypatch, TracedFrontend())
    module = TwoInputs().eval()
    calls = [two_inputs_call(1), two_inputs_call(16)]
    config = TorchTensorRTAotBackendConfig(ir="cpu_trace")

    def job(name: str, warm: bool | str = "auto") -> BuildJob:
        out = tmp_path / name
        return BuildJob(
            TorchTensorRTAotBackendConfig.from_dict(config.to_dict() | {"warm_up": warm}),
            module,
            record(module, calls),
            sample_store(calls, out),
            CPU,
            out,
        )

    build = run_build(job("first"), CPU_TOOLKIT)
    shapes = [call.shapes() for call in build.entry.warm_calls]
    assert shapes[:2] == [[(1, 32), (1, 16), (1, 64)], [(16, 32), (16, 16), (16, 64)]]
    reused = run_build(job("second", warm=False), CPU_TOOLKIT)  # warm_up does not change what is built
    assert reused.from_cache and reused.entry.warm_calls == build.entry.warm_calls
