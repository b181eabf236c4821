"""CPU: ``Pt2Model`` around a stand-in AOTInductor loader: metadata, calls, input checks, engines and their settings."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from aitune_trt_aot import ConfigError, InputShapeError, Pt2InputError, Pt2LoadError, engine_runtime
from aitune_trt_aot.pt2.engines import KERNEL_STRATEGY_CODES, give_settings
from aitune_trt_aot.pt2.package import (
    CONSTANTS_METADATA_KEY,
    COVERAGE_METADATA_KEY,
    INPUTS_METADATA_KEY,
    KERNELS_METADATA_KEY,
    recorded_kernel_specialization,
)
from aitune_trt_aot.pt2.runtime import Pt2Model, graphs_for, load_pt2, set_kernel_strategy
from aitune_trt_aot.ranges import InputRange
from tests.support.fake_pt2 import FakeEngine, FakeLoader, recognise_fake_engines

RANGES = [
    InputRange(None, "tensor 0", (1, 32), None, (16, 32), torch.float32),  # x
    InputRange(None, "tensor 1", (1, 64), None, (16, 64), torch.float32),  # bias
]


def _metadata(**overrides: Any) -> dict[str, str]:
    metadata = {
        INPUTS_METADATA_KEY: json.dumps([r.to_json() for r in RANGES]),
        CONSTANTS_METADATA_KEY: json.dumps({"scale": 0.5}),
        COVERAGE_METADATA_KEY: json.dumps({"engines": 1, "tensorrt_ops": 5, "pytorch_ops": 0}),
    }
    metadata.update(overrides)
    return {k: v for k, v in metadata.items() if v is not None}


def _model(**overrides: Any) -> tuple[Pt2Model, FakeLoader]:
    loader = FakeLoader(_metadata(**overrides))
    return Pt2Model(loader, Path("two_inputs.pt2"), torch.device("cpu")), loader


def test_metadata_is_read_once_at_load() -> None:
    """The ranges, built-in constants and keyword order come from the package's metadata and call spec."""
    model, _ = _model()
    assert model.path == Path("two_inputs.pt2") and model.device == torch.device("cpu")
    assert model.inputs == RANGES
    assert model.constants == {"scale": 0.5}
    assert model._keyword_order == ["bias"]
    assert json.loads(model.metadata[COVERAGE_METADATA_KEY]) == {"engines": 1, "tensorrt_ops": 5, "pytorch_ops": 0}


def test_call_flattens_like_the_traced_module_and_rebuilds_the_output() -> None:
    """Positional then keyword tensors reach the package flat; the flat outputs come back in the traced structure."""
    model, loader = _model()
    x, bias = torch.ones(4, 32), torch.ones(4, 64)
    output = model(x, bias=bias, scale=0.5)  # the built-in value may be passed again
    assert [t is u for t, u in zip(loader.calls[0], (x, bias), strict=True)] == [True, True]
    assert set(output) == {"x", "bias"}
    assert float(output["x"]) == 4 * 32 and float(output["bias"]) == 4 * 64
    assert model.run_flat([x, bias]) == [x.sum(), bias.sum()]
    for positional in ((x, bias), (x, torch.nn.Parameter(bias, requires_grad=False))):  # a subclass: pytree's way
        output = model(*positional)
        assert [t is u for t, u in zip(loader.calls[-1], positional, strict=True)] == [True, True]
        assert float(output["x"]) == 4 * 32 and float(output["bias"]) == 4 * 64


def test_calls_outside_the_compiled_inputs_never_reach_the_package() -> None:
    """Too few tensors, a batch out of range, a wrong dtype, a wrong device or value: Pt2InputError, no run."""
    model, loader = _model()
    x, bias = torch.ones(4, 32), torch.ones(4, 64)
    cases = [
        ((x,), {}, r"two_inputs.pt2 takes 2 tensors, got 1.*\{'scale': 0.5\}"),
        (
            (torch.ones(17, 32),),
            {"bias": torch.ones(17, 64)},
            r"Input tensor 0 has shape \(17, 32\): dimension 0 is 17, outside the built range 1..16 \(two_inputs.pt2\)",
        ),
        ((x,), {"bias": bias.half()}, "Input tensor 1 has dtype torch.float16, the engine was built for torch.float32"),
        ((x,), {"bias": bias, "scale": 2.0}, "compiled with scale=0.5 built in; this call passes scale=2.0"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(Pt2InputError, match=message) as error:
            model(*args, **kwargs)
        assert isinstance(error.value, InputShapeError) and isinstance(error.value, ValueError)
    model.device = torch.device("meta")
    with pytest.raises(Pt2InputError, match="Input tensor 0 is on cpu; the package runs on meta"):
        model(x, bias=bias)
    assert loader.calls == []


def test_packages_without_our_metadata_are_run_unchecked() -> None:
    """A package written by plain torch_tensorrt.save has no ranges or constants: calls pass straight through."""
    model, loader = _model(**{INPUTS_METADATA_KEY: None, CONSTANTS_METADATA_KEY: None})
    assert model.inputs is None and model.constants == {}
    model(torch.ones(40, 3), bias=torch.ones(1))
    assert len(loader.calls) == 1
    with pytest.raises(Pt2InputError, match="takes no keyword 'scale'; its keyword inputs are \\['bias'\\]"):
        model(torch.ones(4, 32), bias=torch.ones(4, 64), scale=0.5)


def test_load_pt2_checks_the_file_before_cuda(tmp_path: Path) -> None:
    """A missing path, a folder and a non-zip file are named as such on any machine, GPU or not."""
    with pytest.raises(Pt2LoadError, match="No .pt2 package at"):
        load_pt2(tmp_path)  # a folder is not a package
    empty = tmp_path / "empty.pt2"
    empty.write_bytes(b"")
    with pytest.raises(Pt2LoadError, match="empty.pt2 is not a complete .pt2 package"):
        load_pt2(empty)


def test_a_tensor_passed_for_a_built_in_constant_is_a_pt2_input_error() -> None:
    """Scale was built in as 0.5; a tensor of two values for it is refused like any other wrong value."""
    model, loader = _model()
    with pytest.raises(Pt2InputError, match="compiled with scale=0.5 built in"):
        model(torch.ones(4, 32), bias=torch.ones(4, 64), scale=torch.tensor([0.5, 0.5]))
    assert loader.calls == []


def test_size_bounds_are_what_the_cpp_example_reads() -> None:
    """Per axis, comma-separated: lowest and highest size, -1 where unchecked (an expression) or unbounded."""
    assert RANGES[0].size_bounds() == ("1,32", "16,32")
    unchecked_and_unbounded = InputRange.from_json({"dims": [None, [3, None]], "dtype": "torch.float32"}, "tensor 0")
    assert unchecked_and_unbounded.size_bounds() == ("-1,3", "-1,-1")


def test_the_deploy_example_makes_inputs_from_the_recorded_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/deploy_pt2.py builds its inputs from ``Pt2Model.inputs``: dynamic axis 0 at the batch, others fixed."""
    import importlib
    import sys

    from tests.support.processes import REPO_ROOT

    monkeypatch.setenv("AITUNE_TRT_AOT_RUNTIME_ONLY", "0")  # the example sets it where unset; keep it off here
    monkeypatch.syspath_prepend(str(REPO_ROOT / "examples"))
    for name in ("deploy_pt2", "pt2_cases"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    deploy = importlib.import_module("deploy_pt2")
    model, _ = _model()
    tensors = deploy.random_inputs(model, 5)
    assert [(tuple(t.shape), t.dtype) for t in tensors] == [((5, 32), torch.float32), ((5, 64), torch.float32)]
    assert [spec.dims for spec in model.inputs] == [((1, 16), (32, 32)), ((1, 16), (64, 64))]


def test_calls_into_the_single_threaded_runner_take_turns() -> None:
    """The package's runner is created single-threaded: calls from 4 threads at once reach it one at a time."""
    loader = FakeLoader(_metadata(), delay=0.01)
    model = Pt2Model(loader, Path("two_inputs.pt2"), torch.device("cpu"))
    x, bias = torch.ones(4, 32), torch.ones(4, 64)
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda _: model(x, bias=bias), range(16)))
    assert len(loader.calls) == 16 and loader.most_at_once == 1
    assert all(float(output["x"]) == 4 * 32 for output in outputs)
    assert model.graphs is None, "no CUDA graphs unless asked for"


def test_the_package_hands_out_its_engines_and_they_get_the_kernel_strategy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """get_custom_objs' engine objects, in name order, each get the strategy's TensorRT-RTX value and no cache."""
    recognise_fake_engines(monkeypatch)
    engines = {"custom_obj_1": FakeEngine(), "custom_obj_0": FakeEngine()}
    loader = FakeLoader(_metadata(), custom_objects={**engines, "custom_obj_2": object()})
    model = Pt2Model(loader, Path("two_inputs.pt2"), torch.device("cpu"))
    assert model.tensorrt_engines() == [engines["custom_obj_0"], engines["custom_obj_1"]]
    with caplog.at_level(logging.WARNING):
        set_kernel_strategy(model, "eager")
    assert [engine.settings for engine in engines.values()] == [[(1, 0, None)], [(1, 0, None)]]
    assert caplog.records == []
    give_settings(engines["custom_obj_0"], "none", runtime_cache="cache")
    assert engines["custom_obj_0"].settings[-1] == (2, 0, "cache")
    assert KERNEL_STRATEGY_CODES == {"lazy": 0, "eager": 1, "none": 2}


def test_engines_that_cannot_be_reached_keep_their_defaults_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A torch whose loader has no get_custom_objs: Pt2LoadError naming why; loading goes on, warned once."""
    model, _ = _model()
    with pytest.raises(Pt2LoadError, match="cannot be reached .*get_custom_objs.*TensorRT-RTX's default runtime"):
        model.tensorrt_engines()
    with caplog.at_level(logging.WARNING):
        set_kernel_strategy(model, "eager")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        "Could not set the kernel specialization of the engines in two_inputs.pt2 (Pt2LoadError: The TensorRT "
        "engines inside two_inputs.pt2 cannot be reached (AttributeError: get_custom_objs)"
    )
    assert warning.endswith("same results.); they run with TensorRT-RTX's defaults.")
    assert engine_runtime.engine_devices(model) == [], "the device check skips engines it cannot reach"


def test_the_activation_reaches_a_package_s_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """engine_runtime finds a loaded package's engines (the .ait path gives them the strategy and kernel cache)."""
    recognise_fake_engines(monkeypatch)
    engine = FakeEngine()
    model = Pt2Model(
        FakeLoader(_metadata(), custom_objects={"custom_obj_0": engine}), Path("m.pt2"), torch.device("cpu")
    )
    assert engine_runtime.reachable_engines(model) == [engine]
    assert engine_runtime.engine_devices(model) == [None], "a fake engine does not describe its device"


@pytest.mark.parametrize(
    ("recorded", "asked", "runs_under"),
    [
        ("auto", "auto", "auto"),
        ("eager", True, True),
        ("lazy", "auto", False),  # lazily specialised kernels must not be captured
        ("lazy", False, False),
        ("none", False, False),
    ],
)
def test_a_package_s_kernel_specialization_decides_its_graphs(
    recorded: str, asked: bool | str, runs_under: Any
) -> None:
    """What a package records (absent: "auto") and what load_pt2 is asked for give the graphs its calls run under."""
    metadata = {} if recorded == "auto" else {KERNELS_METADATA_KEY: recorded}
    choice = recorded_kernel_specialization(metadata, Path("m.pt2"))
    assert choice == recorded
    assert graphs_for(choice, asked, Path("m.pt2")) == runs_under


def test_lazy_kernels_under_forced_graphs_or_an_unknown_choice() -> None:
    """cuda_graphs=True with a lazily specialised package is refused; a choice unknown here is taken as "auto"."""
    with pytest.raises(ConfigError, match=r"m.pt2 was built with kernel_specialization='lazy', and .* cannot be"):
        graphs_for("lazy", True, Path("m.pt2"))
    assert recorded_kernel_specialization({KERNELS_METADATA_KEY: "turbo"}, Path("m.pt2")) == "auto"
