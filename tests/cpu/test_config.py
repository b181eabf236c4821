"""CPU: ``TorchTensorRTAotBackendConfig`` validation, stored form, description and key; precision names."""

from __future__ import annotations

import json

import pytest
import torch

from aitune_trt_aot import AitrtAotError, CompilationSettings, ConfigError, TorchTensorRTAotBackendConfig
from aitune_trt_aot.settings import DeviceSpec, settings_from_dict, to_torch_dtype
from tests.support.processes import REPO_ROOT, subprocess_env

_OPS = ("torch.ops.aten.relu.default", "torch.ops.aten.gelu.default", "torch.ops.aten.mm.default")


def key_probe_config() -> TorchTensorRTAotBackendConfig:
    """A config with multi-item sets (whose iteration order depends on the hash seed) for the key test.

    Also imported by the subprocess in :func:`test_key_is_stable_across_processes`.
    """
    return TorchTensorRTAotBackendConfig(
        ir="dynamo",
        precision="fp16",
        compile_config=CompilationSettings(
            torch_executed_ops=set(_OPS),
            min_block_size=1,
            optimization_level=5,
        ),
        precision_route="cast_module",
    )


def _rich_config(precision: str) -> TorchTensorRTAotBackendConfig:
    """A config that changes settings of every stored kind: dtype, device, enum name, op set, ints, paths."""
    return TorchTensorRTAotBackendConfig(
        ir="dynamo",
        precision=precision,
        compile_config=CompilationSettings(
            enable_autocast=True,
            autocast_low_precision_type={"fp16": torch.float16, "bf16": torch.bfloat16}[precision],
            timing_cache_path="/data/tc.bin",
            device=DeviceSpec(gpu_id=1),
            engine_capability="SAFETY",
            torch_executed_ops={"torch.ops.aten.relu.default"},
            optimization_level=3,
            workspace_size=1 << 30,
        ),
        precision_route="cast_module",
        ts_capture="script",
        check_shapes=False,
        pickle_protocol=4,
    )


# --- defaults and validation ---------------------------------------------------------------------------------


def test_defaults() -> None:
    """A default config builds with the dynamo IR, fp32, automatic precision route and shape checks on."""
    config = TorchTensorRTAotBackendConfig()
    assert config.ir == "dynamo"
    assert config.precision == "fp32"
    assert config.output_format == "auto"
    assert config.precision_route == "auto"
    assert config.ts_capture == "trace"
    assert config.check_shapes is True
    assert config.pickle_protocol == 5
    assert isinstance(config.compile_config, CompilationSettings)
    assert not hasattr(config.compile_config, "enabled_precisions")  # Torch-TensorRT 2.14 removed it
    assert config.to_dict()["compile_config"] == {}


def test_ir_is_normalised() -> None:
    """IR names are case-insensitive and trimmed, and aliases map to the canonical name."""
    spellings = {
        "torchscript": "ts",
        "TorchScript": "ts",
        "TS": "ts",
        " ts ": "ts",
        "Dynamo": "dynamo",
        "export": "dynamo",
        "FX": "fx",
    }
    for given, expected in spellings.items():
        assert TorchTensorRTAotBackendConfig(ir=given).ir == expected, given


def test_unknown_ir_names_allowed_values() -> None:
    """An unknown IR is a ValueError that lists every allowed IR."""
    for ir in ("tensorrt", "", None, 3):
        with pytest.raises(ValueError, match="Unknown ir") as error:
            TorchTensorRTAotBackendConfig(ir=ir)
        assert all(allowed in str(error.value) for allowed in ("'dynamo'", "'ts'", "'fx'")), ir


def test_ir_and_output_format_names_come_from_the_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A format is accepted once registered (formats/__init__.py) and named by a frontend; IRs are the registry's."""
    from aitune_trt_aot.formats import FORMATS
    from aitune_trt_aot.formats.exported_program import ExportedProgramFormat
    from aitune_trt_aot.frontends import FRONTENDS

    class AnotherFormat(ExportedProgramFormat):
        name = "another"

    with pytest.raises(ConfigError, match="Unknown output_format 'another'"):
        TorchTensorRTAotBackendConfig(output_format="another")
    monkeypatch.setitem(FORMATS, "another", AnotherFormat())
    dynamo = type(FRONTENDS["dynamo"])
    monkeypatch.setattr(dynamo, "formats", (*dynamo.formats, "another"))
    assert TorchTensorRTAotBackendConfig(output_format="another").output_format == "another"
    with pytest.raises(ConfigError) as error:
        TorchTensorRTAotBackendConfig(ir="onnx")
    assert f"use one of {', '.join(map(repr, FRONTENDS))} (" in str(error.value)
    assert "'torchscript' means 'ts'" in str(error.value)


def test_bad_field_values_are_rejected() -> None:
    """Each invalid choice or type raises a ValueError that says what is allowed."""
    cases = [
        ("precision", "int4", "'fp32', 'fp16', 'bf16', 'int8', 'fp8'"),
        ("output_format", "pickled_module", "'auto', 'exported_program', 'torchscript', 'aot_inductor'"),
        ("precision_route", "fast", "'auto', 'autocast', 'cast_module'"),
        ("ts_capture", "compile", "'trace', 'script'"),
        ("kernel_specialization", "fast", "'auto', 'eager', 'lazy', 'none'"),
        ("check_shapes", 1, "check_shapes must be True or False"),
        ("check_shapes", "yes", "check_shapes must be True or False"),
        ("pickle_protocol", 1, "pickle_protocol must be an int"),
        ("pickle_protocol", 99, "pickle_protocol must be an int"),
        ("pickle_protocol", True, "pickle_protocol must be an int"),
        ("pickle_protocol", "5", "pickle_protocol must be an int"),
    ]
    for field, value, expected in cases:
        with pytest.raises(ConfigError) as error:
            TorchTensorRTAotBackendConfig(**{field: value})
        assert expected in str(error.value), (field, value)
        assert isinstance(error.value, (ValueError, AitrtAotError))


def test_precision_names_are_normalised() -> None:
    """Precision accepts the usual spellings."""
    for given, expected in {
        "FP16": "fp16",
        "half": "fp16",
        "float16": "fp16",
        "bfloat16": "bf16",
        "fp32": "fp32",
    }.items():
        assert TorchTensorRTAotBackendConfig(precision=given).precision == expected, given


def test_compile_config_given_as_dict() -> None:
    """A dict of CompilationSettings fields becomes the settings object."""
    config = TorchTensorRTAotBackendConfig(compile_config={"min_block_size": 2, "optimization_level": 4})
    assert isinstance(config.compile_config, CompilationSettings)
    assert config.compile_config.min_block_size == 2
    assert config.compile_config.optimization_level == 4


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("min_block_size", "five", "'min_block_size' must be int, got 'five' (str)"),
        ("min_block_size", True, "'min_block_size' must be int, got True (bool)"),
        ("optimization_level", 2.5, "'optimization_level' must be int or None, got 2.5 (float)"),
        ("use_fast_partitioner", "no", "'use_fast_partitioner' must be bool, got 'no' (str)"),
        ("timing_cache_path", 3, "'timing_cache_path' must be str, got 3 (int)"),
    ],
)
def test_compile_config_values_are_type_checked(field: str, value: object, expected: str) -> None:
    """A setting of the wrong type fails when the config is made, naming the field, the type and the value."""
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        TorchTensorRTAotBackendConfig(compile_config={field: value})
    with pytest.raises(ConfigError, match=field):
        TorchTensorRTAotBackendConfig(compile_config=CompilationSettings(**{field: value}))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("workspace_size", -1, "'workspace_size'=-1 is out of range: it must be 0 or more (bytes of scratch memory"),
        ("optimization_level", 9, "'optimization_level'=9 is out of range: it must be from 0 to 5 (TensorRT's builder"),
        ("optimization_level", -1, "'optimization_level'=-1 is out of range: it must be from 0 to 5"),
        ("min_block_size", 0, "'min_block_size'=0 is out of range: it must be 1 or more (the fewest operations"),
        ("num_avg_timing_iters", -1, "'num_avg_timing_iters'=-1 is out of range: it must be 0 or more"),
        ("max_aux_streams", -1, "'max_aux_streams'=-1 is out of range: it must be 0 or more"),
        ("l2_limit_for_tiling", -2, "'l2_limit_for_tiling'=-2 is out of range: it must be -1 or more"),
        ("tiling_optimization_level", "max", "'tiling_optimization_level'='max' is not one of 'none', 'fast', "),
    ],
)
def test_compile_config_values_outside_the_documented_range_are_refused(
    field: str, value: object, expected: str
) -> None:
    """A value Torch-TensorRT documents as invalid fails when the config is made: field, value, range and fix."""
    for compile_config in ({field: value}, CompilationSettings(**{field: value})):
        with pytest.raises(ConfigError) as error:
            TorchTensorRTAotBackendConfig(compile_config=compile_config)
        message = str(error.value)
        assert message.startswith(f"compile_config {expected}"), message
        assert "Pass " in message


def test_compile_config_values_at_the_ends_of_each_range_are_accepted() -> None:
    """Each documented bound is allowed, and None where the field takes None."""
    edges = [
        {"workspace_size": 0, "min_block_size": 1, "optimization_level": 0, "num_avg_timing_iters": 0},
        {"optimization_level": 5, "max_aux_streams": 0, "l2_limit_for_tiling": -1, "tiling_optimization_level": "full"},
        {"optimization_level": None, "max_aux_streams": None, "workspace_size": 1 << 30},
    ]
    for compile_config in edges:
        config = TorchTensorRTAotBackendConfig(compile_config=compile_config)
        assert {name: getattr(config.compile_config, name) for name in compile_config} == compile_config


def test_the_nearest_allowed_value_is_suggested() -> None:
    """The fix names the closest value in range (the top for too large, the bottom for too small)."""
    with pytest.raises(ConfigError, match=r"Pass a value in that range \(the nearest is 5\)"):
        TorchTensorRTAotBackendConfig(compile_config={"optimization_level": 9})
    with pytest.raises(ConfigError, match=r"\(the nearest is 0\)"):
        TorchTensorRTAotBackendConfig(compile_config={"workspace_size": -1})


@pytest.mark.parametrize("field", ["enabled_precisions", "use_explicit_typing", "use_python_runtime"])
def test_settings_removed_in_torch_tensorrt_2_14_name_the_replacement(field: str) -> None:
    """Older Torch-TensorRT settings fail with what to use instead (precision= for reduced precision)."""
    with pytest.raises(ConfigError, match=f"'{field}' is not a Torch-TensorRT 2.14 setting: use"):
        TorchTensorRTAotBackendConfig(compile_config={field: {"fp16"} if field == "enabled_precisions" else True})


def test_impossible_ir_and_format_pairs_fail_at_config_time() -> None:
    """The build plan's stack-free rules run when the config is made."""
    with pytest.raises(ConfigError, match="ir='ts' cannot write output_format='exported_program'"):
        TorchTensorRTAotBackendConfig(ir="ts", output_format="exported_program")
    with pytest.raises(ConfigError, match="ir='ts' cannot write output_format='aot_inductor'"):
        TorchTensorRTAotBackendConfig(ir="ts", output_format="aot_inductor")
    for output_format in ("exported_program", "torchscript", "aot_inductor"):
        assert TorchTensorRTAotBackendConfig(output_format=output_format).output_format == output_format


def test_compile_config_of_wrong_type_is_rejected() -> None:
    """Anything other than CompilationSettings (or a dict of its fields) is rejected with the expected type."""
    from aitune.torch.backend.torch_tensorrt_aot_backend import TorchTensorRTConfig as BuiltinSettings

    for wrong in (42, "fp16", BuiltinSettings()):
        with pytest.raises(ValueError, match="compile_config must be torch_tensorrt.dynamo.CompilationSettings"):
            TorchTensorRTAotBackendConfig(compile_config=wrong)


def test_compile_config_dict_with_unknown_setting_is_rejected() -> None:
    """A compile setting this Torch-TensorRT does not have is named in the error."""
    with pytest.raises(ValueError, match="no_such_setting") as error:
        TorchTensorRTAotBackendConfig(compile_config={"no_such_setting": 1})
    assert "'no_such_setting' (no setting has a similar name)" in str(error.value)


def test_misspelt_setting_is_called_unknown_and_the_closest_names_are_suggested() -> None:
    """A typo in a dict the user passes is not blamed on another Torch-TensorRT version: the close names are offered."""
    with pytest.raises(ConfigError) as error:
        TorchTensorRTAotBackendConfig(compile_config={"min_blok_size": 1, "optimisation_level": 3})
    message = str(error.value)
    assert message.startswith(
        "compile_config has no setting 'min_blok_size' (did you mean 'min_block_size'?), 'optimisation_level' (did "
        "you mean 'optimization_level' or 'tiling_optimization_level'?). Its settings are the fields of "
        "torch_tensorrt.dynamo.CompilationSettings"
    ), message
    assert "another Torch-TensorRT version" not in message


def test_unknown_setting_in_a_stored_config_is_blamed_on_another_version() -> None:
    """A config read back with from_dict (a checkpoint, the build cache) with a name this version lacks: the version."""
    stored = TorchTensorRTAotBackendConfig(compile_config={"min_block_size": 3}).to_dict()
    stored["compile_config"]["setting_from_the_future"] = True
    with pytest.raises(ConfigError, match="written by another Torch-TensorRT version") as error:
        TorchTensorRTAotBackendConfig.from_dict(stored)
    assert "setting_from_the_future" in str(error.value) and "did you mean" not in str(error.value)


def test_settings_from_dict_with_unknown_field_mentions_version() -> None:
    """Stored settings from another Torch-TensorRT version fail with a hint about that version."""
    with pytest.raises(ValueError, match="Torch-TensorRT version") as error:
        settings_from_dict({"min_block_size": 3, "setting_from_the_future": True})
    assert "setting_from_the_future" in str(error.value)


# --- stored form -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_to_dict_from_dict_round_trip(precision: str) -> None:
    """to_dict is JSON-safe, and from_dict (even after a JSON round trip) restores an equal config."""
    config = _rich_config(precision)
    stored = config.to_dict()
    restored = TorchTensorRTAotBackendConfig.from_dict(json.loads(json.dumps(stored)))
    assert restored.to_dict() == stored
    assert restored == config
    assert restored.precision == precision
    assert restored.compile_config.timing_cache_path == "/data/tc.bin"
    assert restored.compile_config.device == DeviceSpec(gpu_id=1)
    assert restored.compile_config.torch_executed_ops == {"torch.ops.aten.relu.default"}
    assert restored.key() == config.key()


def test_to_dict_stores_only_changed_settings() -> None:
    """compile_config holds only the settings that differ from the defaults, in a tagged JSON form."""
    stored = TorchTensorRTAotBackendConfig(
        compile_config=CompilationSettings(autocast_low_precision_type=torch.bfloat16, workspace_size=1 << 20)
    ).to_dict()
    assert stored["compile_config"] == {
        "workspace_size": 1 << 20,
        "autocast_low_precision_type": {"dtype": "bfloat16"},
    }


def test_op_overload_setting_round_trips() -> None:
    """torch_executed_ops given as OpOverload objects survive to_dict/from_dict with the same stored form and key."""
    config = TorchTensorRTAotBackendConfig(
        compile_config=CompilationSettings(torch_executed_ops={torch.ops.aten.relu.default})
    )
    restored = TorchTensorRTAotBackendConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()
    assert restored.key() == config.key()


def test_unknown_field_in_from_dict_is_rejected() -> None:
    """from_dict refuses keys that are not config fields and lists the known ones."""
    with pytest.raises(ValueError, match="Unknown TorchTensorRTAotBackendConfig fields") as error:
        TorchTensorRTAotBackendConfig.from_dict({"ir": "dynamo", "bogus": 1})
    assert "bogus" in str(error.value)
    assert "precision_route" in str(error.value)


def test_non_serialisable_setting_fails_clearly_in_to_dict() -> None:
    """A setting value that cannot be stored (a dataloader object) is a ValueError naming the problem."""

    class Loader:
        """Stands for a calibration dataloader."""

    config = TorchTensorRTAotBackendConfig(compile_config=CompilationSettings(autocast_calibration_dataloader=Loader()))
    with pytest.raises(ValueError, match="Cannot store the Torch-TensorRT setting value") as error:
        config.to_dict()
    assert "Loader" in str(error.value)


# --- describe and key --------------------------------------------------------------------------------------------


def test_describe_shows_only_changed_fields() -> None:
    """describe() is empty for the default config and lists exactly the fields that were changed."""
    assert TorchTensorRTAotBackendConfig().describe() == ""
    assert TorchTensorRTAotBackendConfig(ir="TorchScript").describe() == "ir=ts"
    assert TorchTensorRTAotBackendConfig(precision="fp16").describe() == "precision=fp16"
    ops = CompilationSettings(min_block_size=1, torch_executed_ops={_OPS[0]})
    ops_description = "compile_config(min_block_size=1,torch_executed_ops={torch.ops.aten.relu.default})"
    assert TorchTensorRTAotBackendConfig(compile_config=ops).describe() == ops_description
    both = TorchTensorRTAotBackendConfig(ir="ts", compile_config=ops, check_shapes=False)
    assert both.describe() == f"ir=ts,{ops_description},check_shapes=False"


def test_key_is_the_same_for_equivalent_configs() -> None:
    """Spellings of the same choices (IR alias, precision names) give the same key."""
    spelled = TorchTensorRTAotBackendConfig(ir="TorchScript", precision="half")
    canonical = TorchTensorRTAotBackendConfig(ir="ts", precision="fp16")
    assert spelled.key() == canonical.key()
    assert TorchTensorRTAotBackendConfig().key() == TorchTensorRTAotBackendConfig().key()


def test_key_changes_with_compile_relevant_fields() -> None:
    """Changing any field that affects the build changes the key (AITune caches builds by it)."""
    default_key = TorchTensorRTAotBackendConfig().key()
    variants = {
        "ir": {"ir": "ts"},
        "fp16": {"precision": "fp16"},
        "bf16": {"precision": "bf16"},
        "output_format": {"output_format": "torchscript"},
        "precision_route": {"precision_route": "cast_module"},
        "min_block_size": {"compile_config": CompilationSettings(min_block_size=1)},
        "torch_executed_ops": {"compile_config": CompilationSettings(torch_executed_ops={_OPS[0]})},
        "ts_capture": {"ts_capture": "script"},
        "pickle_protocol": {"pickle_protocol": 4},
    }
    keys = {name: TorchTensorRTAotBackendConfig(**changes).key() for name, changes in variants.items()}
    assert default_key not in keys.values()
    assert len(set(keys.values())) == len(keys), keys


def test_key_is_stable_across_processes() -> None:
    """A fresh process with another hash seed computes the same key (set order must not leak into it)."""
    import subprocess
    import sys

    env = subprocess_env() | {"PYTHONHASHSEED": "12345"}  # this process has a random seed
    code = "from tests.cpu.test_config import key_probe_config; print('KEY=' + key_probe_config().key())"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys = [line.removeprefix("KEY=") for line in result.stdout.splitlines() if line.startswith("KEY=")]
    assert keys == [key_probe_config().key()]


# --- precision names ---------------------------------------------------------------------------------------------


def test_precision_names() -> None:
    """Precisions may be given as torch dtypes or common names, case-insensitively."""
    names = [
        ("fp16", torch.float16),
        ("half", torch.float16),
        ("FP16", torch.float16),
        ("torch.float16", torch.float16),
        (torch.float16, torch.float16),
        ("bf16", torch.bfloat16),
        ("bfloat16", torch.bfloat16),
        ("fp32", torch.float32),
        ("float", torch.float32),
    ]
    for name, dtype in names:
        assert to_torch_dtype(name) == dtype, name


def test_unknown_precision_is_rejected() -> None:
    """An unknown precision is a ValueError suggesting torch dtypes."""
    for bad in ("fp13", "", 16, None):
        with pytest.raises(ValueError, match="Unknown precision.*torch.float16"):
            to_torch_dtype(bad)


def test_kernel_specialization_rules() -> None:
    """Lazy specialization only without CUDA graphs; explicit strategies only where the backend can set them."""
    assert TorchTensorRTAotBackendConfig().kernel_specialization == "auto"
    for choice in ("eager", "none"):
        assert TorchTensorRTAotBackendConfig(kernel_specialization=choice).to_dict()["kernel_specialization"] == choice
    assert TorchTensorRTAotBackendConfig(kernel_specialization="lazy", cuda_graphs=False).describe() == (
        "cuda_graphs=False,kernel_specialization=lazy"
    )
    for graphs in (True, "auto"):  # "auto" captures exported_program and aot_inductor calls
        for output_format in ("exported_program", "aot_inductor"):
            with pytest.raises(ConfigError, match="'lazy' cannot be combined with CUDA graphs"):
                TorchTensorRTAotBackendConfig(
                    kernel_specialization="lazy", cuda_graphs=graphs, output_format=output_format
                )
    with pytest.raises(ConfigError, match="cannot be applied to output_format='torchscript'") as refused:
        TorchTensorRTAotBackendConfig(kernel_specialization="eager", output_format="torchscript")
    assert "engines of 'aot_inductor' and 'exported_program' artifacts only" in str(refused.value)
    # the engines inside a .pt2 take it too (pt2.engines), and the package records it for load_pt2
    assert TorchTensorRTAotBackendConfig(kernel_specialization="none", output_format="aot_inductor").describe() == (
        "output_format=aot_inductor,kernel_specialization=none"
    )
    TorchTensorRTAotBackendConfig(output_format="torchscript")  # "auto" is fine everywhere
