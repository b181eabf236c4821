"""CPU: INT8/FP8 builds' config rules, plan, calibration-sample choice, layer counting and accuracy metric.

Whole quantized builds through the pipeline are in ``test_pipeline.py``. ModelOpt's FP8 export works on the CPU;
its INT8 export does not (ModelOpt's CPU-only fake quantization cannot be exported), so graphs here are FP8 and the
INT8 kind is shown on a hand-made node.
"""

from __future__ import annotations

import copy
import json
import sys

import modelopt.torch.quantization as mtq
import pytest
import torch
from modelopt.torch.quantization.utils import export_torch_mode
from torch import nn

from aitune_trt_aot import (
    CompilationSettings,
    ConfigError,
    MissingRequirementError,
    QuantizationConfig,
    TorchTensorRTAotBackendConfig,
)
from aitune_trt_aot.compiled import UNQUANTIZED, Coverage, layer_precisions
from aitune_trt_aot.pipeline.quantize import calibration_indexes, recipe_config
from aitune_trt_aot.plan import check_exclude, make_plan
from aitune_trt_aot.quantization import CALIBRATION_CAP, DEFAULT_THRESHOLDS, INSTALL_COMMAND
from aitune_trt_aot.stack import Stack
from aitune_trt_aot.validation import MaxAbsTolerance, QuantizedTolerance, accuracy_metrics, output_mismatch
from tests.support.models import MLP, SmallCNN
from tests.support.recording import record

H100 = {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
A100 = {"gpu": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
STACK = Stack("2.14.1+cu130", "2.14.0", "1.6.1.120", True, {"dynamo_frontend": True, "torchscript_frontend": True})


def _plan(config: TorchTensorRTAotBackendConfig, gpu: dict | None = None):
    torch.manual_seed(0)
    calls = [((torch.randn(1, 64),), {}), ((torch.randn(16, 64),), {})]
    return make_plan(config, STACK, record(MLP().eval(), calls), calls[0], config.compile_config, gpu)


# --- the config ---------------------------------------------------------------------------------------------------


def test_int8_and_fp8_are_precisions_with_a_default_quantization() -> None:
    """precision='int8'/'fp8' needs no other field; quantization defaults to ModelOpt's recipe and fp16 elsewhere."""
    for precision in ("int8", "fp8", "INT8"):
        config = TorchTensorRTAotBackendConfig(precision=precision)
        assert config.precision == precision.lower() and config.quantization == QuantizationConfig()
    defaults = QuantizationConfig()
    assert (defaults.recipe_name("int8"), defaults.recipe_name("fp8")) == ("INT8_DEFAULT_CFG", "FP8_DEFAULT_CFG")
    assert (defaults.calibration_samples, defaults.unquantized_precision, defaults.exclude) == (None, "fp16", ())
    assert defaults.thresholds("int8") == DEFAULT_THRESHOLDS["int8"]
    assert QuantizationConfig(min_cosine=0.9).thresholds("fp8").min_cosine == 0.9
    assert QuantizationConfig(unquantized_precision="bfloat16").unquantized_precision == "bf16"
    assert QuantizationConfig(exclude="head").exclude == ("head",)
    assert QuantizationConfig(exclude=["a", "b.*"]).exclude == ("a", "b.*")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"recipe": "int8"}, "name of a ModelOpt recipe ending in _CFG"),
        ({"calibration_samples": 0}, "calibration_samples must be an int >= 1"),
        ({"calibration_samples": True}, "calibration_samples must be an int >= 1"),
        ({"unquantized_precision": "int8"}, "unquantized_precision must be one of 'fp16', 'bf16', 'fp32'"),
        ({"exclude": [""]}, "exclude must be a list of module name patterns"),
        ({"exclude": 3}, "exclude must be a list of module name patterns"),
        ({"min_cosine": 1.5}, "min_cosine must lie in [0, 1]"),
        ({"min_cosine": "high"}, "min_cosine must be a number"),
        ({"max_relative_error": -0.1}, "max_relative_error must lie in [0, inf]"),
        ({"max_relative_error": float("nan")}, "max_relative_error must be a number"),
        ({"calibration": 8}, "Unknown quantization fields ['calibration']"),
        ({"min_cosinus": 0.9}, "Did you mean 'min_cosine' for 'min_cosinus'?"),
    ],
)
def test_bad_quantization_values_are_refused(fields: dict, message: str) -> None:
    """Each bad value is a ConfigError saying what is allowed, from a dataclass or a dict alike."""
    with pytest.raises(ConfigError) as error:
        TorchTensorRTAotBackendConfig(precision="int8", quantization=fields)
    assert message in str(error.value)
    with pytest.raises(ConfigError, match="quantization must be aitune_trt_aot.QuantizationConfig"):
        TorchTensorRTAotBackendConfig(precision="int8", quantization=["exclude"])


def test_a_quantized_config_round_trips_and_shows_in_describe_and_key() -> None:
    """Only changed quantization fields are stored; JSON round trip is exact; describe and key tell configs apart."""
    quantization = QuantizationConfig(calibration_samples=8, exclude=("head", "encoder.layers.0.*"), min_cosine=0.98)
    config = TorchTensorRTAotBackendConfig(precision="fp8", quantization=quantization)
    stored = config.to_dict()
    assert stored["quantization"] == {
        "calibration_samples": 8,
        "exclude": ["head", "encoder.layers.0.*"],
        "min_cosine": 0.98,
    }
    assert TorchTensorRTAotBackendConfig.from_dict(json.loads(json.dumps(stored))) == config
    assert TorchTensorRTAotBackendConfig().to_dict()["quantization"] == {}
    assert config.describe() == (
        "precision=fp8,quantization(calibration_samples=8,exclude=[head,encoder.layers.0.*],min_cosine=0.98)"
    )
    assert TorchTensorRTAotBackendConfig(precision="fp8").describe() == "precision=fp8"
    keys = {
        TorchTensorRTAotBackendConfig(precision="fp8").key(),
        TorchTensorRTAotBackendConfig(precision="int8").key(),
        config.key(),
        TorchTensorRTAotBackendConfig(precision="fp8", quantization={"unquantized_precision": "bf16"}).key(),
    }
    assert len(keys) == 4


def test_quantization_with_a_precision_that_does_not_quantize_is_refused() -> None:
    """A quantization setting would be ignored by fp16: refused, naming the precisions that use it."""
    with pytest.raises(ConfigError, match="quantization is set \\(exclude=\\[head\\]\\) but precision='fp16'"):
        TorchTensorRTAotBackendConfig(precision="fp16", quantization={"exclude": ["head"]})
    assert TorchTensorRTAotBackendConfig(precision="fp16", quantization=QuantizationConfig()).precision == "fp16"


@pytest.mark.parametrize("ir", ["ts", "fx"])
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_int8_and_fp8_need_the_dynamo_ir(ir: str, precision: str) -> None:
    """TorchScript and FX graphs do not carry ModelOpt's quantize/dequantize nodes: refused, naming ir='dynamo'."""
    with pytest.raises(ConfigError) as error:
        TorchTensorRTAotBackendConfig(ir=ir, precision=precision)
    message = str(error.value)
    assert message.startswith(f"ir={ir!r} cannot build {precision} engines")
    assert f"Use ir='dynamo' with precision={precision!r}, or precision='fp16' with ir={ir!r}." in message


def test_quantized_engines_are_refused_in_a_format_not_known_to_hold_them() -> None:
    """The dynamo IR writes exported_program and aot_inductor quantized; torchscript is refused until measured."""
    for output_format in ("auto", "exported_program", "aot_inductor"):
        assert TorchTensorRTAotBackendConfig(precision="int8", output_format=output_format).precision == "int8"
    with pytest.raises(ConfigError) as error:
        TorchTensorRTAotBackendConfig(precision="int8", output_format="torchscript")
    message = str(error.value)
    assert message.startswith("output_format='torchscript' cannot hold int8 engines here")
    assert message.endswith("Use output_format='exported_program' or 'aot_inductor' with precision='int8'.")


def test_a_recipe_must_quantize_to_the_precision_asked_for() -> None:
    """precision='int8' with an FP8 recipe would build FP8: refused, naming the recipe family to use."""
    assert TorchTensorRTAotBackendConfig(precision="int8", quantization={"recipe": "INT8_SMOOTHQUANT_CFG"})
    with pytest.raises(ConfigError, match="recipe 'FP8_DEFAULT_CFG' does not quantize to int8.*named INT8_\\*_CFG"):
        TorchTensorRTAotBackendConfig(precision="int8", quantization={"recipe": "FP8_DEFAULT_CFG"})


def test_autocast_settings_do_not_combine_with_quantization() -> None:
    """The unquantized layers' precision is quantization.unquantized_precision, not autocast's."""
    settings = CompilationSettings(enable_autocast=True, autocast_low_precision_type=torch.float16)
    with pytest.raises(ConfigError, match="precision='fp8' does not combine with compile_config enable_autocast"):
        TorchTensorRTAotBackendConfig(precision="fp8", compile_config=settings)


# --- the plan -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "dtype", "described"),
    [
        ("fp16", torch.float16, "int8(rest float16)"),
        ("bf16", torch.bfloat16, "int8(rest bfloat16)"),
        ("fp32", None, "int8(rest float32)"),
    ],
)
def test_an_int8_plan_types_the_rest_by_the_unquantized_precision(rest: str, dtype, described: str) -> None:
    """The quantized route: autocast off, the rest's dtype, the quantization's thresholds as the self-check's."""
    config = TorchTensorRTAotBackendConfig(precision="int8", quantization={"unquantized_precision": rest})
    plan = _plan(config, A100)
    assert (plan.precision.route, plan.precision.dtype, plan.precision.quantized) == ("quantized", dtype, "int8")
    assert plan.precision.settings.enable_autocast is False
    assert plan.precision.describe() == described and f"precision={described}" in plan.describe()
    assert plan.tolerance == QuantizedTolerance("int8", 0.99, 0.15)
    assert _plan(TorchTensorRTAotBackendConfig(precision="fp16")).tolerance == MaxAbsTolerance(torch.float16)


def test_fp8_below_compute_capability_8_9_is_refused_naming_the_gpu() -> None:
    """FP8 needs sm 8.9+: refused on an A100 with its name; built on an H100, or where the GPU is not known."""
    with pytest.raises(MissingRequirementError) as error:
        _plan(TorchTensorRTAotBackendConfig(precision="fp8"), A100)
    message = str(error.value)
    assert "precision='fp8' needs a GPU of compute capability 8.9 or newer" in message
    assert "NVIDIA A100-SXM4-80GB, has 8.0" in message and "Use precision='int8' or 'fp16'" in message
    for gpu in (H100, None, {"gpu": None, "compute_capability": None}):
        assert _plan(TorchTensorRTAotBackendConfig(precision="fp8"), gpu).precision.quantized == "fp8"


def test_missing_modelopt_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ModelOpt an int8 build is a MissingRequirementError with the extra to install; fp16 is unaffected."""
    monkeypatch.setitem(sys.modules, "modelopt.torch.quantization", None)  # the import now fails
    config = TorchTensorRTAotBackendConfig(precision="int8")  # configs are made without ModelOpt
    with pytest.raises(MissingRequirementError) as error:
        _plan(config, H100)
    assert f"Install it with `{INSTALL_COMMAND}`" in str(error.value)
    assert INSTALL_COMMAND == 'pip install "aitune-trt-aot[quant]"'
    assert _plan(TorchTensorRTAotBackendConfig(precision="fp16"), H100).precision.quantized is None


def test_a_recipe_the_installed_modelopt_lacks_is_refused_with_the_closest_name() -> None:
    """A misspelt recipe is found at plan time (it needs ModelOpt) and the nearest recipe is suggested."""
    config = TorchTensorRTAotBackendConfig(precision="int8", quantization={"recipe": "INT8_SMOTHQUANT_CFG"})
    with pytest.raises(ConfigError) as error:
        _plan(config, H100)
    assert "Did you mean 'INT8_SMOOTHQUANT_CFG'?" in str(error.value)
    assert "INT8_DEFAULT_CFG" in str(error.value)


# --- calibration: which recorded calls, which quantizers -----------------------------------------------------------


def test_calibration_samples_are_evenly_spaced_from_first_to_last() -> None:
    """All recorded calls up to the cap; a smaller count spreads over the recording, first and last included."""
    assert calibration_indexes(10, None) == list(range(10))
    assert calibration_indexes(10, 4) == [0, 3, 6, 9]
    assert calibration_indexes(5, 3) == [0, 2, 4]
    assert calibration_indexes(3, 8) == [0, 1, 2], "never more than were recorded"
    assert calibration_indexes(1, None) == calibration_indexes(7, 1) == [0]
    capped = calibration_indexes(1000, None)
    assert len(capped) == CALIBRATION_CAP == 64 and (capped[0], capped[-1]) == (0, 999)
    steps = {b - a for a, b in zip(capped, capped[1:], strict=False)}
    assert steps <= {15, 16}, "evenly spaced"
    assert calibration_indexes(1000, 200) == calibration_indexes(1000, 200), "deterministic"
    assert len(set(calibration_indexes(1000, 200))) == 200


def test_excluded_modules_get_their_quantizers_disabled_in_a_copy_of_the_recipe() -> None:
    """Exclude patterns become disabled quantizer entries after ModelOpt's own; ModelOpt's dict is not changed."""
    stock = copy.deepcopy(mtq.INT8_DEFAULT_CFG)
    recipe = recipe_config(mtq, "int8", QuantizationConfig(exclude=("head", "encoder.layers.0.*")))
    assert recipe["quant_cfg"][-2:] == [
        {"quantizer_name": "head.*", "enable": False},
        {"quantizer_name": "encoder.layers.0.*.*", "enable": False},
    ]
    assert mtq.INT8_DEFAULT_CFG == stock
    stock_entries = recipe_config(mtq, "int8", QuantizationConfig())["quant_cfg"][: len(stock["quant_cfg"])]
    assert stock_entries == stock["quant_cfg"], "ModelOpt's own entries first, unchanged"


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_8_bit_recipes_leave_convolutions_unquantized(precision: str) -> None:
    """TensorRT-RTX builds 8-bit engines for matrix multiplications only: convolutions' quantizers are off."""
    stock = getattr(mtq, QuantizationConfig().recipe_name(precision))["quant_cfg"]
    recipe = recipe_config(mtq, precision, QuantizationConfig())
    assert recipe["quant_cfg"][: len(stock)] == stock
    added = recipe["quant_cfg"][len(stock) :]
    assert {"quantizer_name": "*", "parent_class": "nn.Conv2d", "enable": False} in added
    assert len(added) == 6
    torch.manual_seed(0)
    model, x = SmallCNN().eval(), torch.randn(2, 3, 32, 32)
    mtq.quantize(model, recipe, lambda m: m(x))
    assert not model.features[0].input_quantizer.is_enabled and not model.features[3].weight_quantizer.is_enabled
    assert model.head.input_quantizer.is_enabled and model.head.weight_quantizer.is_enabled


def test_exclude_patterns_that_match_no_module_are_refused() -> None:
    """A misspelt module name would exclude nothing: ConfigError with the closest name and the names there are."""
    names = [name for name, _ in MLP().named_modules()]
    check_exclude(("net.4", "net.*"), names)
    with pytest.raises(ConfigError) as error:
        check_exclude(("net.4", "nett.0"), names)
    message = str(error.value)
    assert "patterns ['nett.0'] match no module" in message and "'nett.0': did you mean 'net.0'?" in message
    assert "net, net.0, net.1, net.2, net.3, net.4" in message


# --- coverage: layers by precision, from the graph -----------------------------------------------------------------


def _fp8_program(model: nn.Module, x: torch.Tensor, exclude: tuple[str, ...] = ()) -> torch.export.ExportedProgram:
    quantized = copy.deepcopy(model)
    mtq.quantize(quantized, recipe_config(mtq, "fp8", QuantizationConfig(exclude=exclude)), lambda m: m(x))
    with export_torch_mode():
        return torch.export.export(quantized, (x,), strict=False)


@pytest.mark.parametrize(("cls", "shape"), [(MLP, (2, 64)), (SmallCNN, (2, 3, 32, 32))])
def test_layers_are_counted_by_precision_from_the_exported_graph(cls: type[nn.Module], shape: tuple) -> None:
    """FP8-quantized linears count as fp8, the convolutions fp8 leaves alone and the plain export's as unquantized."""
    torch.manual_seed(0)
    model, x = cls().eval(), torch.randn(*shape)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert layer_precisions(_fp8_program(model, x).graph_module) == {"fp8": linears, UNQUANTIZED: 3 - linears}
    assert layer_precisions(torch.export.export(model, (x,)).graph_module) == {UNQUANTIZED: 3}


def test_an_excluded_layer_counts_as_unquantized() -> None:
    """What the graph holds decides: the layer left out by exclude has no quantize nodes, so it is 16/32-bit."""
    torch.manual_seed(0)
    program = _fp8_program(MLP().eval(), torch.randn(2, 64), exclude=("net.4",))
    layers = layer_precisions(program.graph_module)
    assert layers == {"fp8": 2, UNQUANTIZED: 1}
    coverage = Coverage(1, 20, 0, layers=layers)
    assert coverage.quantized_layers() == 2 and Coverage(1, 20, 0).quantized_layers() == 0
    assert (
        coverage.describe()
        == "1 TensorRT engine, 20 ops in TensorRT, 0 in PyTorch; layers: 2 fp8, 1 unquantized (16/32-bit)"
    )
    assert Coverage(**json.loads(json.dumps(coverage.to_dict()))) == coverage


def test_int8_nodes_and_one_sided_quantization_are_told_apart() -> None:
    """quantize_op(num_bits=8, exponent_bits=0) is int8; a matmul with one quantized operand (weight-only) is not."""
    graph = torch.fx.Graph()
    x, w, v, amax = (graph.placeholder(name) for name in ("x", "w", "v", "amax"))
    quantize = torch.ops.tensorrt.quantize_op.default
    qx = graph.call_function(quantize, (x, amax, 8, 0, False, False))
    qw = graph.call_function(quantize, (w, amax, 8, 0, False, False))
    both = graph.call_function(torch.ops.aten.mm.default, (qx, graph.call_function(torch.ops.aten.t.default, (qw,))))
    one_sided = graph.call_function(torch.ops.aten.linear.default, (v, qw))
    graph.output((both, one_sided))
    assert layer_precisions(torch.fx.GraphModule(nn.Module(), graph)) == {"int8": 1, UNQUANTIZED: 1}


# --- the accuracy metric -------------------------------------------------------------------------------------------


def test_accuracy_metrics_are_cosine_and_relative_l2_error() -> None:
    """Identical: (1, 0); scaled: cosine 1 but relative error 1; zeros are identical to zeros, not to anything else."""
    torch.manual_seed(0)
    want = torch.randn(4, 10)
    assert accuracy_metrics(want, want) == pytest.approx((1.0, 0.0))
    assert accuracy_metrics(2 * want, want) == pytest.approx((1.0, 1.0))
    assert accuracy_metrics(torch.zeros(3), torch.zeros(3)) == (1.0, 0.0)
    assert accuracy_metrics(torch.ones(3), torch.zeros(3)) == (0.0, float("inf"))
    assert accuracy_metrics(torch.zeros(3), torch.ones(3)) == (0.0, 1.0)


def test_the_quantized_tolerance_names_metric_value_and_threshold() -> None:
    """Noise fails the cosine bound; a doubled output (same direction) fails the relative-error bound."""
    torch.manual_seed(0)
    want = torch.randn(8, 10)
    tolerance = QuantizedTolerance("int8", min_cosine=0.99, max_relative_error=0.15)
    assert output_mismatch(want + 0.01 * torch.randn(8, 10), want, tolerance) is None
    noise = output_mismatch(torch.randn(8, 10), want, tolerance)
    assert noise.startswith("output 0 of the int8 engines has cosine similarity ")
    assert "to eager, below quantization min_cosine=0.99 (relative error " in noise
    doubled = output_mismatch(2 * want, want, tolerance)
    assert doubled.startswith("output 0 of the int8 engines has relative error 1 to eager, above quantization ")
    assert "max_relative_error=0.15 (cosine similarity 1.000000)" in doubled
    assert "NaN" in output_mismatch(torch.full((8, 10), float("nan")), want, tolerance)
