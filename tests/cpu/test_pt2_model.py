"""CPU: ``Pt2Model`` around a stand-in AOTInductor loader: metadata, call flattening and input checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree

from aitune_trt_aot import InputShapeError, Pt2InputError, Pt2LoadError
from aitune_trt_aot.pt2.runtime import (
    CONSTANTS_METADATA_KEY,
    COVERAGE_METADATA_KEY,
    INPUTS_METADATA_KEY,
    Pt2Model,
    load_pt2,
)
from aitune_trt_aot.ranges import InputRange

RANGES = [
    InputRange(None, "tensor 0", (1, 32), None, (16, 32), torch.float32),  # x
    InputRange(None, "tensor 1", (1, 64), None, (16, 64), torch.float32),  # bias
]


class FakeLoader:
    """Answers like ``torch._C._aoti.AOTIModelPackageLoader`` for a package traced as ``f(x, *, bias)``.

    ``boxed_run`` records the flat tensors it got and returns ``(x.sum(), bias.sum())`` as a flat list.
    """

    def __init__(self, metadata: dict[str, str]) -> None:
        self.metadata = metadata
        self.calls: list[list[torch.Tensor]] = []
        tensor = torch.zeros(1)
        _, self.in_spec = pytree.tree_flatten(((tensor,), {"bias": tensor}))
        _, self.out_spec = pytree.tree_flatten({"x": tensor, "bias": tensor})

    def get_call_spec(self) -> list[str]:
        return [pytree.treespec_dumps(self.in_spec), pytree.treespec_dumps(self.out_spec)]

    def get_metadata(self) -> dict[str, str]:
        return dict(self.metadata)

    def boxed_run(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        self.calls.append(list(tensors))
        return [t.sum() for t in tensors]


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
