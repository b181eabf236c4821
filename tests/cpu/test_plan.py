"""CPU: ``make_plan`` end to end on a hand-made stack, the order of its refusals, and the ``Stack`` seam."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import pytest
import torch

from aitune_trt_aot import (
    CompilationSettings,
    ConfigError,
    MissingRequirementError,
    TorchTensorRTAotBackendConfig,
    UnsupportedInputsError,
)
from aitune_trt_aot.formats import FORMATS
from aitune_trt_aot.frontends import FRONTENDS, CompileRequest, FrontendOptions
from aitune_trt_aot.plan import make_plan, uses_runtime_settings, with_precision
from aitune_trt_aot.precision import plan_precision
from aitune_trt_aot.settings import StandInCompilationSettings
from aitune_trt_aot.stack import MINIMUM_TORCH, MINIMUM_TORCH_TENSORRT, Stack, current_stack, version_tuple
from tests.support.models import MLP
from tests.support.recording import record

ALL_FRONTENDS = {"dynamo_frontend": True, "torchscript_frontend": True, "fx_frontend": True}


def _stack(tensorrt_rtx: bool = False, features: dict[str, bool] | None = None, **versions: str) -> Stack:
    """A stack as ``current_stack`` would describe a supported GPU machine (no GPU needed)."""
    return Stack(
        torch_version=versions.get("torch_version", "2.14.1+cu130"),
        torch_tensorrt_version=versions.get("torch_tensorrt_version", "2.14.0"),
        tensorrt_version="1.6.1.120" if tensorrt_rtx else "10.14.1",
        tensorrt_rtx=tensorrt_rtx,
        features=dict(ALL_FRONTENDS if features is None else features),
    )


def _mlp_calls() -> list[tuple[tuple, dict]]:
    return [((torch.randn(1, 64),), {}), ((torch.randn(16, 64),), {})]


@pytest.fixture
def mlp_spec():
    """The graph spec AITune records for ``MLP`` called at batch sizes 1 and 16."""
    torch.manual_seed(0)
    calls = _mlp_calls()
    return record(MLP().eval(), calls), calls[0]


def _plan(config: TorchTensorRTAotBackendConfig, stack: Stack, spec_and_sample) -> object:
    spec, sample = spec_and_sample
    return make_plan(config, stack, spec, sample, config.compile_config)


# --- make_plan: what a build will do -------------------------------------------------------------------------


def test_default_plan_is_dynamo_exported_program_fp32(mlp_spec) -> None:
    """The default config plans a dynamo build, saved as an exported program, in fp32, with the recorded ranges."""
    stack = _stack()
    config = TorchTensorRTAotBackendConfig()
    plan = _plan(config, stack, mlp_spec)
    assert plan.frontend is FRONTENDS["dynamo"]
    assert plan.artifact_format is FORMATS["exported_program"]
    assert (plan.precision.route, plan.precision.dtype) == ("fp32", None)
    assert plan.precision.settings == config.compile_config
    assert [(r.name, r.min_shape, r.opt_shape, r.max_shape, r.dtype) for r in plan.ranges] == [
        ("x", (1, 64), (16, 64), (16, 64), torch.float32)
    ]
    assert plan.options == FrontendOptions(ts_capture="trace", reduced_dtype=None)
    assert plan.stack is stack
    assert plan.describe() == (
        "ir=dynamo format=exported_program precision=fp32 [torch 2.14.1+cu130, Torch-TensorRT 2.14.0, TensorRT 10.14.1]"
    )


@pytest.mark.parametrize(("precision", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_reduced_precision_plan_uses_autocast_and_the_chosen_format(mlp_spec, precision, dtype) -> None:
    """fp16/bf16 with dynamo is autocast (the user's settings untouched); output_format picks the artifact."""
    config = TorchTensorRTAotBackendConfig(precision=precision, output_format="aot_inductor")
    plan = _plan(config, _stack(tensorrt_rtx=True), mlp_spec)
    assert plan.artifact_format is FORMATS["aot_inductor"]
    assert (plan.precision.route, plan.precision.dtype) == ("autocast", dtype)
    assert plan.precision.settings.enable_autocast is True
    assert plan.precision.settings.autocast_low_precision_type == dtype
    assert config.compile_config.enable_autocast is False
    assert plan.options.reduced_dtype is None, "only builder-flag frontends get the dtype as an option"
    assert f"format=aot_inductor precision=autocast({str(dtype).removeprefix('torch.')})" in plan.describe()
    assert "TensorRT-RTX 1.6.1.120" in plan.describe()


def test_ts_fp16_on_standard_tensorrt_passes_the_dtype_as_a_builder_flag(mlp_spec) -> None:
    """ir='ts' in fp16 on standard TensorRT: weak typing, the dtype reaches the frontend options, torchscript format."""
    config = TorchTensorRTAotBackendConfig(ir="ts", precision="fp16", ts_capture="script")
    plan = _plan(config, _stack(tensorrt_rtx=False), mlp_spec)
    assert plan.frontend is FRONTENDS["ts"]
    assert plan.artifact_format is FORMATS["torchscript"]
    assert (plan.precision.route, plan.precision.dtype) == ("weak_typing", torch.float16)
    assert plan.precision.settings == config.compile_config
    assert plan.options == FrontendOptions(ts_capture="script", reduced_dtype=torch.float16)


@pytest.mark.parametrize("ir", ["ts", "fx"])
def test_ts_and_fx_in_reduced_precision_are_refused_on_a_strongly_typed_stack(mlp_spec, ir: str) -> None:
    """On TensorRT-RTX, where every network is strongly typed, ts/fx cannot build fp16: ConfigError to dynamo."""
    config = TorchTensorRTAotBackendConfig(ir=ir, precision="fp16")
    with pytest.raises(ConfigError, match=f"ir='{ir}' cannot build torch.float16 engines with TensorRT-RTX"):
        _plan(config, _stack(tensorrt_rtx=True), mlp_spec)
    assert _plan(TorchTensorRTAotBackendConfig(ir=ir), _stack(tensorrt_rtx=True), mlp_spec).precision.route == "fp32"


def test_two_reduced_precisions_are_refused(mlp_spec) -> None:
    """precision='fp16' with compile_config autocast to bf16 is ambiguous: ConfigError naming both."""
    mixed = {"enable_autocast": True, "autocast_low_precision_type": torch.bfloat16}
    config = TorchTensorRTAotBackendConfig(precision="fp16", compile_config=mixed)
    with pytest.raises(ConfigError, match="precision='fp16' and compile_config autocast_low_precision_type=.*two"):
        _plan(config, _stack(), mlp_spec)


def test_make_plan_warns_about_settings_ts_ignores(mlp_spec, caplog: pytest.LogCaptureFixture) -> None:
    """Planning a ts build names each changed setting the frontend ignores; a dynamo build warns about none."""
    compile_config = {"min_block_size": 1, "optimization_level": 5}
    with caplog.at_level(logging.WARNING, logger="aitune_trt_aot.plan"):
        _plan(TorchTensorRTAotBackendConfig(ir="ts", compile_config=compile_config), _stack(), mlp_spec)
        _plan(TorchTensorRTAotBackendConfig(compile_config=compile_config), _stack(), mlp_spec)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1
    assert messages[0].startswith("ir='ts' ignores these compile_config settings: optimization_level (it uses only")


def test_with_precision_changes_only_the_precision(mlp_spec) -> None:
    """The precision_route='auto' fallback swaps the precision plan and keeps everything else."""
    config = TorchTensorRTAotBackendConfig(precision="fp16")
    plan = _plan(config, _stack(), mlp_spec)
    cast = plan_precision(torch.float16, config.compile_config, "cast_module", typed=True)
    fallback = with_precision(plan, cast)
    assert fallback.precision is cast
    assert fallback.precision.route == "cast_module"
    assert plan.precision.route == "autocast", "the original plan is unchanged (frozen)"
    assert dataclasses.replace(fallback, precision=plan.precision) == plan


def test_runtime_settings_apply_to_reachable_engines_on_tensorrt_rtx(caplog: pytest.LogCaptureFixture) -> None:
    """exported_program engines on TensorRT-RTX get runtime settings; elsewhere an explicit strategy is named unused."""
    rtx, standard = _stack(tensorrt_rtx=True), _stack()
    config = TorchTensorRTAotBackendConfig()
    assert uses_runtime_settings(config, "exported_program", rtx)
    assert not uses_runtime_settings(config, "exported_program", standard)
    assert not uses_runtime_settings(TorchTensorRTAotBackendConfig(ir="ts"), "torchscript", rtx)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="aitune_trt_aot.plan"):
        uses_runtime_settings(
            TorchTensorRTAotBackendConfig(kernel_specialization="eager"), "exported_program", standard
        )
    assert [r.getMessage() for r in caplog.records] == [
        "kernel_specialization='eager' is not applied: torch 2.14.1+cu130, Torch-TensorRT 2.14.0, TensorRT 10.14.1 has "
        "no runtime settings for these engines."
    ]


# --- make_plan: refusals come before any work, in a fixed order ------------------------------------------------


def test_refusals_come_before_the_graph_spec_is_read() -> None:
    """Stack, config and input refusals are raised without touching the graph spec (None here) or building."""
    keyword_call = ((torch.zeros(2, 64),), {"mask": torch.zeros(2)})
    settings = CompilationSettings()
    old = _stack(torch_version="2.11.0+cu130", torch_tensorrt_version="2.11.0")
    # 1. an unsupported stack wins over everything else
    with pytest.raises(MissingRequirementError, match="needs torch >= 2.14 and Torch-TensorRT >= 2.14"):
        make_plan(TorchTensorRTAotBackendConfig(ir="ts"), old, None, keyword_call, settings)
    # 2. then a missing frontend
    no_ts = _stack(features={"dynamo_frontend": True})
    with pytest.raises(MissingRequirementError, match="torchscript_frontend"):
        make_plan(TorchTensorRTAotBackendConfig(ir="ts"), no_ts, None, keyword_call, settings)
    # 3. then the inputs the frontend cannot take
    with pytest.raises(UnsupportedInputsError, match=r"keyword inputs \['mask'\]"):
        make_plan(TorchTensorRTAotBackendConfig(ir="ts"), _stack(), None, keyword_call, settings)


def test_make_plan_applies_the_config_rules_again() -> None:
    """A config changed after it was made (it is a mutable dataclass) is checked again when the build is planned."""
    config = TorchTensorRTAotBackendConfig(
        output_format="aot_inductor", kernel_specialization="lazy", cuda_graphs=False
    )
    config.cuda_graphs = "auto"  # .pt2 calls are captured now: lazy kernels must not be
    with pytest.raises(ConfigError, match="kernel_specialization='lazy' cannot be combined with CUDA graphs"):
        make_plan(config, _stack(), None, ((torch.zeros(2, 64),), {}), config.compile_config)


# --- the stack seam --------------------------------------------------------------------------------------------


def test_stack_answers_questions_about_itself() -> None:
    """Flavour, strong typing, frontends and the description come from the recorded facts only."""
    rtx = _stack(tensorrt_rtx=True, features={"dynamo_frontend": True, "tensorrt_rtx": True})
    assert (rtx.flavour, rtx.strongly_typed) == ("TensorRT-RTX", True)
    assert rtx.has_frontend("dynamo_frontend") and not rtx.has_frontend("torchscript_frontend")
    assert not rtx.has_frontend("no_such_feature")
    assert rtx.describe() == "torch 2.14.1+cu130, Torch-TensorRT 2.14.0, TensorRT-RTX 1.6.1.120"
    standard = _stack()
    assert (standard.flavour, standard.strongly_typed) == ("TensorRT", False)
    missing = Stack("2.14.1", None, None, False, {}, "ImportError: libnvinfer.so")
    assert missing.describe() == "torch 2.14.1, Torch-TensorRT not importable"
    assert missing.unsupported_reason() is None, "without Torch-TensorRT only torch's version is judged"
    unknown_trt = dataclasses.replace(standard, tensorrt_version=None)
    assert unknown_trt.describe().endswith("TensorRT ?")
    with pytest.raises(dataclasses.FrozenInstanceError):
        standard.tensorrt_rtx = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("torch_version", "torch_tensorrt_version", "named"),
    [
        ("2.11.0+cu130", "2.11.0", "torch 2.11.0+cu130 and Torch-TensorRT 2.11.0"),
        ("2.13.1", "2.14.0", "torch 2.13.1"),
        ("2.14.1", "2.13.0", "Torch-TensorRT 2.13.0"),
    ],
)
def test_old_stacks_name_what_is_too_old(torch_version: str, torch_tensorrt_version: str, named: str) -> None:
    """unsupported_reason names the minimum versions, what this machine has, and the extras to install."""
    stack = _stack(torch_version=torch_version, torch_tensorrt_version=torch_tensorrt_version)
    reason = stack.unsupported_reason()
    assert reason is not None
    assert f"this machine has {named}." in reason
    assert "aitune-trt-aot[tensorrt-rtx]" in reason and "aitune-trt-aot[tensorrt]" in reason
    for version in ("2.14.1", "2.15.0.dev20261101", "3.0.0"):
        assert _stack(torch_version=version, torch_tensorrt_version=version).unsupported_reason() is None


def test_version_tuple_reads_release_and_local_versions() -> None:
    """Versions with local parts or pre-release tails compare by major and minor; unreadable ones as 0.0."""
    assert version_tuple("2.14.1+cu130") == (2, 14)
    assert version_tuple("2.15.0a0+git1234") == (2, 15)
    assert version_tuple("2.14") == (2, 14)
    assert version_tuple("garbage") == (0, 0)
    assert MINIMUM_TORCH == MINIMUM_TORCH_TENSORRT == (2, 14)


def test_current_stack_describes_this_machine() -> None:
    """current_stack() is computed once and records torch's version; without Torch-TensorRT it says why."""
    stack = current_stack()
    assert current_stack() is stack
    assert stack.torch_version == torch.__version__
    if stack.torch_tensorrt_version is None:
        assert stack.import_error, "the reason Torch-TensorRT does not import is kept"
        assert stack.features == {} and not stack.has_frontend("dynamo_frontend")
        assert stack.describe() == f"torch {torch.__version__}, Torch-TensorRT not importable"


# --- frontend declarations and the compile request ---------------------------------------------------------------


def test_frontends_declare_what_the_plan_enforces() -> None:
    """Features, alternatives, inputs, settings, precision typing and aliases, as the plan and config read them."""
    dynamo, ts, fx = FRONTENDS["dynamo"], FRONTENDS["ts"], FRONTENDS["fx"]
    assert (dynamo.feature, ts.feature, fx.feature) == ("dynamo_frontend", "torchscript_frontend", "fx_frontend")
    assert (dynamo.alternative, ts.alternative, fx.alternative) == ("ir='ts'", "ir='dynamo'", "ir='dynamo'")
    assert (dynamo.positional_only, ts.positional_only, fx.positional_only) == (False, True, True)
    assert (dynamo.typed_precision, ts.typed_precision, fx.typed_precision) == (True, False, False)
    assert (dynamo.aliases, ts.aliases, fx.aliases) == (("export",), ("torchscript", "torch_script"), ())
    assert dynamo.accepted_settings is None, "dynamo takes every CompilationSettings field"
    fields = {f.name for f in dataclasses.fields(StandInCompilationSettings)}
    for frontend in (ts, fx):
        assert frontend.accepted_settings, frontend.name
        assert frontend.accepted_settings <= fields, frontend.accepted_settings - fields
    assert {"min_block_size", "workspace_size"} <= ts.accepted_settings
    assert fx.accepted_settings == {"min_block_size", "workspace_size"}


def test_compile_request_makes_one_engine_profile_per_input(mlp_spec) -> None:
    """trt_inputs turns the planned ranges into torch_tensorrt.Input profiles, optionally named."""
    spec, sample = mlp_spec
    plan = _plan(TorchTensorRTAotBackendConfig(), _stack(), mlp_spec)
    fake = SimpleNamespace(Input=lambda **kwargs: kwargs)  # records what an Input would be made from
    request = CompileRequest(
        module=MLP(),
        graph_spec=spec,
        ranges=plan.ranges,
        sample=sample,
        device=torch.device("cpu"),
        settings=plan.precision.settings,
        options=plan.options,
        torch_tensorrt=fake,  # type: ignore[arg-type]
    )
    profile = {"min_shape": (1, 64), "opt_shape": (16, 64), "max_shape": (16, 64), "dtype": torch.float32}
    assert request.trt_inputs() == [profile]
    assert request.trt_inputs(["input_x"]) == [profile | {"name": "input_x"}]
    with pytest.raises(ValueError):  # one name per range, never silently fewer profiles
        request.trt_inputs(["a", "b"])
