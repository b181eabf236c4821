"""CPU: ``TorchTensorRTAotBackendConfig`` validation, stored form, description and key; precision names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aitune_trt_aot import CompilationSettings, TorchTensorRTAotBackendConfig
from aitune_trt_aot.settings import DeviceSpec, normalize_precisions, settings_from_dict, to_torch_dtype
from tests.conftest import run_python, subprocess_env

_OPS = ("torch.ops.aten.relu.default", "torch.ops.aten.gelu.default", "torch.ops.aten.mm.default")


def key_probe_config() -> TorchTensorRTAotBackendConfig:
    """A config with multi-item sets (whose iteration order depends on the hash seed) for the key test.

    Also imported by the subprocess in :func:`test_key_is_stable_across_processes`.
    """
    return TorchTensorRTAotBackendConfig(
        ir="dynamo",
        compile_config=CompilationSettings(
            enabled_precisions={torch.float32, torch.float16},
            torch_executed_ops=set(_OPS),
            min_block_size=1,
            optimization_level=5,
        ),
        precision_route="cast_module",
    )


def _rich_config(precision: torch.dtype) -> TorchTensorRTAotBackendConfig:
    """A config that changes settings of every stored kind: dtype set, device, enum name, op set, ints."""
    return TorchTensorRTAotBackendConfig(
        ir="ts",
        compile_config=CompilationSettings(
            enabled_precisions={precision},
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
    assert config.precision_route == "auto"
    assert config.ts_capture == "trace"
    assert config.check_shapes is True
    assert config.pickle_protocol == 5
    assert isinstance(config.compile_config, CompilationSettings)
    assert config.compile_config.enabled_precisions == {torch.float32}
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


def test_bad_field_values_are_rejected() -> None:
    """Each invalid choice or type raises a ValueError that says what is allowed."""
    cases = [
        ("precision_route", "fast", "'auto', 'autocast', 'cast_module'"),
        ("ts_capture", "compile", "'trace', 'script'"),
        ("check_shapes", 1, "check_shapes must be True or False"),
        ("check_shapes", "yes", "check_shapes must be True or False"),
        ("pickle_protocol", 1, "pickle_protocol must be an int"),
        ("pickle_protocol", 99, "pickle_protocol must be an int"),
        ("pickle_protocol", True, "pickle_protocol must be an int"),
        ("pickle_protocol", "5", "pickle_protocol must be an int"),
    ]
    for field, value, expected in cases:
        with pytest.raises(ValueError) as error:
            TorchTensorRTAotBackendConfig(**{field: value})
        assert expected in str(error.value), (field, value)


def test_compile_config_given_as_dict() -> None:
    """A dict of CompilationSettings fields becomes the settings object, with precisions as torch dtypes."""
    config = TorchTensorRTAotBackendConfig(compile_config={"enabled_precisions": {"fp16"}, "min_block_size": 2})
    assert isinstance(config.compile_config, CompilationSettings)
    assert config.compile_config.enabled_precisions == {torch.float16}
    assert config.compile_config.min_block_size == 2


def test_compile_config_of_wrong_type_is_rejected() -> None:
    """Anything other than CompilationSettings (or a dict of its fields) is rejected with the expected type."""
    from aitune.torch.backend.torch_tensorrt_aot_backend import TorchTensorRTConfig as BuiltinSettings

    for wrong in (42, "fp16", BuiltinSettings()):
        with pytest.raises(ValueError, match="compile_config must be torch_tensorrt.dynamo.CompilationSettings"):
            TorchTensorRTAotBackendConfig(compile_config=wrong)


def test_compile_config_dict_with_unknown_setting_is_rejected() -> None:
    """A compile setting this Torch-TensorRT does not have is named in the error."""
    with pytest.raises(ValueError, match="no_such_setting"):
        TorchTensorRTAotBackendConfig(compile_config={"no_such_setting": 1})


def test_settings_from_dict_with_unknown_field_mentions_version() -> None:
    """Stored settings from another Torch-TensorRT version fail with a hint about that version."""
    with pytest.raises(ValueError, match="Torch-TensorRT version") as error:
        settings_from_dict({"min_block_size": 3, "setting_from_the_future": True})
    assert "setting_from_the_future" in str(error.value)


# --- stored form -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_to_dict_from_dict_round_trip(precision: torch.dtype) -> None:
    """to_dict is JSON-safe, and from_dict (even after a JSON round trip) restores an equal config."""
    config = _rich_config(precision)
    stored = config.to_dict()
    restored = TorchTensorRTAotBackendConfig.from_dict(json.loads(json.dumps(stored)))
    assert restored.to_dict() == stored
    assert restored == config
    assert restored.compile_config.enabled_precisions == {precision}
    assert restored.compile_config.device == DeviceSpec(gpu_id=1)
    assert restored.compile_config.torch_executed_ops == {"torch.ops.aten.relu.default"}
    assert restored.key() == config.key()


def test_to_dict_stores_only_changed_settings() -> None:
    """compile_config holds only the settings that differ from the defaults, in a tagged JSON form."""
    stored = TorchTensorRTAotBackendConfig(
        compile_config=CompilationSettings(enabled_precisions={torch.bfloat16}, workspace_size=1 << 20)
    ).to_dict()
    assert stored["compile_config"] == {
        "enabled_precisions": {"set": [{"dtype": "bfloat16"}]},
        "workspace_size": 1 << 20,
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
    fp16 = CompilationSettings(enabled_precisions={torch.float16})
    fp16_description = "compile_config(enabled_precisions={float16})"
    assert TorchTensorRTAotBackendConfig(compile_config=fp16).describe() == fp16_description
    both = TorchTensorRTAotBackendConfig(ir="ts", compile_config=fp16, check_shapes=False)
    assert both.describe() == "ir=ts,compile_config(enabled_precisions={float16}),check_shapes=False"


def test_key_is_the_same_for_equivalent_configs() -> None:
    """Spellings of the same choices (IR alias, precision names) give the same key."""
    spelled = TorchTensorRTAotBackendConfig(ir="TorchScript", compile_config={"enabled_precisions": {"half"}})
    fp16 = CompilationSettings(enabled_precisions={torch.float16})
    canonical = TorchTensorRTAotBackendConfig(ir="ts", compile_config=fp16)
    assert spelled.key() == canonical.key()
    assert TorchTensorRTAotBackendConfig().key() == TorchTensorRTAotBackendConfig().key()


def test_key_changes_with_compile_relevant_fields() -> None:
    """Changing any field that affects the build changes the key (AITune caches builds by it)."""
    default_key = TorchTensorRTAotBackendConfig().key()
    variants = {
        "ir": {"ir": "ts"},
        "fp16": {"compile_config": CompilationSettings(enabled_precisions={torch.float16})},
        "bf16": {"compile_config": CompilationSettings(enabled_precisions={torch.bfloat16})},
        "precision_route": {"precision_route": "cast_module"},
        "min_block_size": {"compile_config": CompilationSettings(min_block_size=1)},
        "torch_executed_ops": {"compile_config": CompilationSettings(torch_executed_ops={_OPS[0]})},
        "ts_capture": {"ts_capture": "script"},
        "pickle_protocol": {"pickle_protocol": 4},
    }
    keys = {name: TorchTensorRTAotBackendConfig(**changes).key() for name, changes in variants.items()}
    assert default_key not in keys.values()
    assert len(set(keys.values())) == len(keys), keys


def test_key_is_stable_across_processes(repo_root: Path) -> None:
    """A fresh process with another hash seed computes the same key (set order must not leak into it)."""
    env = subprocess_env(repo_root) | {"PYTHONHASHSEED": "12345"}  # this process has a random seed
    code = "from tests.test_config import key_probe_config; print('KEY=' + key_probe_config().key())"
    result = run_python(repo_root, "-c", code, env=env)
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


def test_missing_precisions_mean_fp32() -> None:
    """No precisions (None or empty) means fp32; names are normalised to dtypes."""
    assert normalize_precisions(None) == {torch.float32}
    assert normalize_precisions(set()) == {torch.float32}
    assert normalize_precisions(["half", torch.float16]) == {torch.float16}
