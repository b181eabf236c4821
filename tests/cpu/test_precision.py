"""CPU: how a requested precision becomes Torch-TensorRT settings, and the precision boundary module."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn
from torch.export import Dim

from aitune_trt_aot import CompilationSettings, ConfigError, TorchTensorRTAotBackendConfig
from aitune_trt_aot.frontends.fx import lower_precision_name
from aitune_trt_aot.precision import (
    PrecisionBoundary,
    cast_floating,
    output_dtypes,
    plan_precision,
    precision_boundary,
    requested_dtypes,
)


class Scaled(nn.Module):
    """A linear layer with a keyword-only float, the signature torch.export must see through the boundary."""

    def __init__(self) -> None:
        """Build the layer."""
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        """Project ``x`` of shape (batch, 8) and scale it."""
        return self.linear(x) * scale


class Several(nn.Module):
    """Returns a floating tensor, an integer tensor and a plain number."""

    def __init__(self) -> None:
        """Build the layer."""
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Return the projection, its argmax and a constant."""
        y = self.linear(x)
        return y, y.argmax(dim=1), 3


def _scaled() -> Scaled:
    torch.manual_seed(0)
    return Scaled().eval()


# --- requested_dtypes and plan_precision (the refusals are the plan's: tests/cpu/test_plan.py) -----------------

NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16"}


def test_fp32_plan() -> None:
    """fp32 keeps the settings as given."""
    settings = CompilationSettings()
    assert requested_dtypes("fp32", settings) == set()
    plan = plan_precision(None, settings, "auto", typed=True)
    assert (plan.route, plan.dtype, plan.describe()) == ("fp32", None, "fp32")
    assert plan.settings == settings


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_reduced_precision_with_auto_route_uses_autocast(dtype: torch.dtype) -> None:
    """fp16/bf16 with route auto becomes Torch-TensorRT autocast; the user's settings are not changed."""
    user = CompilationSettings()
    assert requested_dtypes(NAMES[dtype], user) == {dtype}
    plan = plan_precision(dtype, user, "auto", typed=True)
    assert (plan.route, plan.dtype) == ("autocast", dtype)
    assert plan.describe() == f"autocast({str(dtype).removeprefix('torch.')})"
    assert plan.settings.enable_autocast is True
    assert plan.settings.autocast_low_precision_type == dtype
    assert user.enable_autocast is False, "the user's settings were changed"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_cast_module_route(dtype: torch.dtype) -> None:
    """Route cast_module keeps autocast off; the network is typed by the cast module instead."""
    plan = plan_precision(dtype, CompilationSettings(), "cast_module", typed=True)
    assert (plan.route, plan.dtype) == ("cast_module", dtype)
    assert plan.settings.enable_autocast is False
    assert plan.settings.autocast_low_precision_type is None


def test_users_own_autocast_wins_over_route() -> None:
    """Settings that already enable autocast are built with autocast, whatever the route and precision field."""
    settings = CompilationSettings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    assert requested_dtypes("fp32", settings) == {torch.float16}
    plan = plan_precision(torch.float16, settings, "cast_module", typed=True)
    assert (plan.route, plan.dtype) == ("autocast", torch.float16)


def test_two_reduced_precisions_are_both_reported() -> None:
    """precision='fp16' with an autocast type of bf16 asks for two dtypes (the plan refuses the conflict)."""
    mixed = CompilationSettings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)
    assert requested_dtypes("fp16", mixed) == {torch.float16, torch.bfloat16}


def test_reduced_precision_without_typed_frontend_uses_builder_flags() -> None:
    """A frontend that does not type the network (ts, fx) gets fp16 as a weakly typed builder flag; fp32 is fp32."""
    plan = plan_precision(torch.float16, CompilationSettings(), "auto", typed=False)
    assert (plan.route, plan.dtype) == ("weak_typing", torch.float16)
    assert plan_precision(None, CompilationSettings(), "auto", typed=False).route == "fp32"


def test_bf16_with_fx_is_refused_when_the_config_is_made() -> None:
    """The FX frontend has no bf16 lowering (it built fp32 while reporting bf16): refused at once, naming the fix."""
    expected = (
        "ir='fx' cannot build torch.bfloat16 engines: its Torch-TensorRT frontend builds fp32 or fp16 only. "
        "Use ir='dynamo' for torch.bfloat16, or precision='fp32' or 'fp16'"
    )
    with pytest.raises(ConfigError, match=expected):
        TorchTensorRTAotBackendConfig(ir="fx", precision="bf16")
    bf16_autocast = CompilationSettings(enable_autocast=True, autocast_low_precision_type=torch.bfloat16)
    with pytest.raises(ConfigError, match="ir='fx' cannot build torch.bfloat16 engines"):
        TorchTensorRTAotBackendConfig(ir="fx", compile_config=bf16_autocast)
    for precision in ("fp32", "fp16"):
        assert TorchTensorRTAotBackendConfig(ir="fx", precision=precision).precision == precision
    assert TorchTensorRTAotBackendConfig(ir="dynamo", precision="bf16").precision == "bf16"


def test_fx_lowers_each_precision_it_accepts_as_itself() -> None:
    """fp32 and fp16 map to the FX frontend's FP32 and FP16; any other dtype is an error, never a silent FP32."""
    assert lower_precision_name(None) == "FP32"
    assert lower_precision_name(torch.float16) == "FP16"
    with pytest.raises(ConfigError, match="ir='fx' cannot build torch.bfloat16 engines"):
        lower_precision_name(torch.bfloat16)


# --- precision boundary ----------------------------------------------------------------------------------------


def test_boundary_has_the_wrapped_forward_signature() -> None:
    """The wrapper's forward has the module's parameters, kinds, defaults and annotations."""
    module = _scaled()
    wrapper = precision_boundary(module, None, [torch.float32])
    assert isinstance(wrapper, PrecisionBoundary)
    assert inspect.signature(wrapper.forward) == inspect.signature(module.forward)
    assert list(inspect.signature(wrapper.forward).parameters) == ["x", "scale"]


def test_boundary_casts_inputs_and_outputs() -> None:
    """Over a bf16 module, fp32 inputs are cast in, the module runs in bf16, outputs come back in fp32."""
    module = _scaled()
    seen: list[torch.dtype] = []
    low = copy.deepcopy(module).to(torch.bfloat16)
    low.linear.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].dtype))
    wrapper = precision_boundary(low, torch.bfloat16, output_dtypes(module, ((torch.randn(2, 8),), {})))
    x = torch.randn(5, 8)
    with torch.no_grad():
        actual, expected = wrapper(x, scale=2.0), module(x, scale=2.0)
    assert seen == [torch.bfloat16]
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=5e-2, atol=5e-2)


def test_boundary_exports_with_dynamic_batch() -> None:
    """torch.export matches dynamic shapes by the module's argument names through the boundary."""
    module = _scaled()
    wrapper = precision_boundary(copy.deepcopy(module).to(torch.bfloat16), torch.bfloat16, [torch.float32])
    batch = Dim("batch", min=1, max=16)
    exported = torch.export.export(
        wrapper, (torch.randn(3, 8),), {"scale": 2.0}, dynamic_shapes={"x": {0: batch}, "scale": None}
    )
    x = torch.randn(7, 8)
    with torch.no_grad():
        output = exported.module()(x, scale=2.0)
    assert output.shape == (7, 4)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, module(x, scale=2.0), rtol=5e-2, atol=5e-2)
    casts = [n for n in exported.graph.nodes if n.op == "call_function" and n.target == torch.ops.aten.to.dtype]
    assert {n.args[1] for n in casts} == {torch.bfloat16, torch.float32}, "both casts belong to the exported graph"


def test_plain_boundary_would_hide_the_signature_from_export() -> None:
    """Without precision_boundary's signature, export sees only *args and rejects named dynamic shapes."""
    plain = PrecisionBoundary(_scaled(), None, [torch.float32])
    with pytest.raises(torch._dynamo.exc.UserError, match="top-level keys must be the arg names"):
        torch.export.export(plain, (torch.randn(3, 8),), dynamic_shapes={"x": {0: Dim("batch", min=1, max=16)}})


def test_output_dtypes_of_a_tuple() -> None:
    """output_dtypes gives one entry per output leaf: the dtype of tensors, None for other values."""
    torch.manual_seed(0)
    module = Several().eval()
    assert output_dtypes(module, ((torch.randn(2, 8),), {})) == [torch.float32, torch.int64, None]


def test_boundary_casts_only_floating_outputs_back() -> None:
    """A tuple output keeps its structure; floats return in fp32, integers and plain values are untouched."""
    torch.manual_seed(0)
    module = Several().eval()
    sample = ((torch.randn(2, 8),), {})
    wrapper = precision_boundary(copy.deepcopy(module).half(), torch.float16, output_dtypes(module, sample))
    with torch.no_grad():
        y, index, constant = wrapper(torch.randn(4, 8))
    assert (y.dtype, y.shape) == (torch.float32, (4, 4))
    assert index.dtype == torch.int64
    assert constant == 3


def test_cast_floating_keeps_structure_and_non_floats() -> None:
    """cast_floating casts floating tensors anywhere in a nested structure and leaves the rest alone."""
    data = {"a": [torch.ones(2), torch.arange(3)], "b": (torch.zeros(1, dtype=torch.float64), 1.5, "text")}
    cast = cast_floating(data, torch.float16)
    assert cast["a"][0].dtype == torch.float16
    assert cast["a"][1].dtype == torch.int64
    assert cast["b"][0].dtype == torch.float16
    assert cast["b"][1:] == (1.5, "text")
