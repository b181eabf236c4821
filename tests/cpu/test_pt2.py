"""CPU: the ``.pt2`` format's config, input ranges, runtime checks, loader errors and ``save_pt2`` errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import aitune.torch as ait
import pytest
import torch
from aitune.torch.backend import TorchEagerBackend
from aitune.torch.checkpoint.artifact import ArtifactPath
from torch.utils import _pytree as pytree

from aitune_trt_aot import (
    ConfigError,
    Pt2ExportError,
    Pt2InputError,
    Pt2LoadError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    save_pt2,
)
from aitune_trt_aot.checkpoint import CheckpointWriter
from aitune_trt_aot.formats.aot_inductor import input_ranges
from aitune_trt_aot.pt2 import runtime as pt2_runtime
from aitune_trt_aot.pt2.runtime import TensorRange, load_pt2
from tests.support.processes import run_python, subprocess_env


def test_output_format_is_validated_and_round_trips() -> None:
    """'aot_inductor' needs ir='dynamo'; unknown names list the choices; old config dicts still load."""
    config = TorchTensorRTAotBackendConfig(output_format="aot_inductor")
    assert TorchTensorRTAotBackendConfig.from_dict(config.to_dict()) == config
    assert config.describe() == "output_format=aot_inductor"
    with pytest.raises(ConfigError, match="needs ir='dynamo'"):
        TorchTensorRTAotBackendConfig(ir="ts", output_format="aot_inductor")
    with pytest.raises(ConfigError, match="Unknown output_format 'onnx': use one of 'auto', 'exported_program'"):
        TorchTensorRTAotBackendConfig(output_format="onnx")
    old = {k: v for k, v in TorchTensorRTAotBackendConfig().to_dict().items() if k != "output_format"}
    assert TorchTensorRTAotBackendConfig.from_dict(old).output_format == "auto"


def test_input_ranges_come_from_the_exported_program() -> None:
    """Dynamic axes get the export range, static axes their size, in the package's input order."""
    model = torch.nn.Linear(64, 10)
    batch = torch.export.Dim("batch", min=1, max=16)
    program = torch.export.export(model, (torch.randn(4, 64),), dynamic_shapes=({0: batch},))
    assert input_ranges(program) == [TensorRange(dims=((1, 16), (64, 64)), dtype="torch.float32")]


def test_tensor_range_names_what_is_wrong() -> None:
    """dtype, rank and per-axis bounds are checked; unchecked (None) axes and unbounded maxima pass."""
    spec = TensorRange(dims=((1, 16), None, (8, None)), dtype="torch.float32")
    assert spec.problem(torch.zeros(4, 3, 8)) is None
    assert spec.problem(torch.zeros(4, 99, 1000)) is None
    assert spec.problem(torch.zeros(17, 3, 8)) == "size 17 on axis 0, compiled for 1..16"
    assert spec.problem(torch.zeros(4, 3, 7)) == "size 7 on axis 2, compiled for 8.."
    assert spec.problem(torch.zeros(4, 3)) == "2 dimensions, compiled for 3"
    assert spec.problem(torch.zeros(4, 3, 8, dtype=torch.float16)) == "dtype torch.float16, compiled for torch.float32"
    assert TensorRange.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_load_pt2_refuses_clearly_without_file_or_gpu(tmp_path: Path) -> None:
    """A missing file and a machine without CUDA are Pt2LoadErrors that say so."""
    with pytest.raises(Pt2LoadError, match="No .pt2 package at"):
        load_pt2(tmp_path / "missing.pt2")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    package = tmp_path / "model.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("model/data/aotinductor/model/wrapper.cpp", "")
    with pytest.raises(Pt2LoadError, match="need an NVIDIA GPU; CUDA is not available here"):
        load_pt2(package)


def test_load_pt2_names_a_damaged_or_cut_package(tmp_path: Path) -> None:
    """A package cut to half its size (or not a zip at all) is a Pt2LoadError naming the file, not BadZipFile."""
    package = tmp_path / "model.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        for index in range(20):
            archive.writestr(f"model/data/constants/custom_obj_{index}", bytes(range(256)) * 64)
    data = package.read_bytes()
    package.write_bytes(data[: len(data) // 2])
    with pytest.raises(Pt2LoadError, match=r"model.pt2 is not a complete .pt2 package.*damaged or was cut short"):
        load_pt2(package)
    package.write_bytes(b"plain text")
    with pytest.raises(Pt2LoadError, match="damaged or was cut short"):
        load_pt2(package)


def _package_signature(keywords: list[str], constants: dict) -> pt2_runtime.Pt2Model:
    """A Pt2Model with only what keyword handling reads (no loader, no GPU)."""
    model = object.__new__(pt2_runtime.Pt2Model)
    model.path, model._keyword_order, model.constants = Path("two_inputs.pt2"), keywords, constants
    return model


def test_package_keywords_are_ordered_and_checked() -> None:
    """Keywords come back in traced order; a built-in value must match; an unknown keyword is refused."""
    model = _package_signature(["bias", "mask"], {"scale": 0.5})
    bias, mask = torch.zeros(1), torch.ones(1)
    assert list(model._traced_keywords({"mask": mask, "bias": bias})) == ["bias", "mask"]
    assert list(model._traced_keywords({"bias": bias, "scale": 0.5})) == ["bias"]
    with pytest.raises(Pt2InputError, match="compiled with scale=0.5 built in; this call passes scale=2.0"):
        model._traced_keywords({"bias": bias, "scale": 2.0})
    with pytest.raises(Pt2InputError, match="takes no keyword 'shift'"):
        model._traced_keywords({"bias": bias, "shift": 1.0})


def test_keyword_order_comes_from_the_call_spec() -> None:
    """Keywords are reordered as traced; a spec without keywords gives none (packages store specs as text)."""
    tensor = torch.zeros(1)
    _, spec = pytree.tree_flatten(((tensor, tensor), {"bias": tensor, "mask": tensor}))
    assert pt2_runtime.traced_keyword_order(pytree.treespec_loads(pytree.treespec_dumps(spec))) == ["bias", "mask"]
    _, positional = pytree.tree_flatten(((tensor,), {}))
    assert pt2_runtime.traced_keyword_order(positional) == []


def test_model_names_are_read_from_the_archive(tmp_path: Path) -> None:
    """The names under data/aotinductor/ of a package, for the 'no such model' message."""
    package = tmp_path / "two.pt2"
    with zipfile.ZipFile(package, "w") as archive:
        for name in ("a", "b"):
            archive.writestr(f"two/data/aotinductor/{name}/wrapper.cpp", "")
        archive.writestr("two/data/constants/custom_obj_0", "")
    assert pt2_runtime._model_names(package) == ["a", "b"]


def test_runtime_library_missing_is_explained() -> None:
    """Without Torch-TensorRT the loader and the CMake helper say which library is needed."""
    try:
        found = pt2_runtime.runtime_library()
    except Pt2LoadError as error:
        assert "libtorchtrt_runtime.so" in str(error) and "without importing torch_tensorrt" in str(error)
        result = run_python("-m", "aitune_trt_aot.pt2.paths", "--runtime-library")
        assert result.returncode == 1 and "libtorchtrt_runtime.so" in result.stderr
    else:
        assert found.name == "libtorchtrt_runtime.so"


def test_runtime_only_import_skips_aitune() -> None:
    """With AITUNE_TRT_AOT_RUNTIME_ONLY=1 the package offers load_pt2 and does not import AITune."""
    code = (
        "import sys, aitune_trt_aot as p; "
        "print(int('aitune' in sys.modules), int(hasattr(p, 'load_pt2')), int(hasattr(p, 'save_pt2')))"
    )
    env = subprocess_env()
    env["AITUNE_TRT_AOT_RUNTIME_ONLY"] = "1"
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["0", "1", "0"]


def _loaded_backend(tmp_path: Path, artifact_format: str) -> TorchTensorRTAotBackend:
    """A backend as ait.load leaves it, holding a (dummy) artifact of ``artifact_format``."""
    (tmp_path / "model.bin").write_bytes(b"package bytes")
    entry = {
        "type": "TorchTensorRTAotBackend",
        "writer": CheckpointWriter(),
        "config": TorchTensorRTAotBackendConfig(output_format="aot_inductor").to_dict(),
        "artifact": ArtifactPath(tmp_path, "model.bin"),
        "artifact_format": artifact_format,
        "device": None,
        "shape_guard": None,
        "precision": "fp32",
    }
    return TorchTensorRTAotBackend.from_dict(None, entry)


def test_save_pt2_copies_the_package_atomically(tmp_path: Path) -> None:
    """A backend holding a .pt2 package is copied to the target; the name must end in .pt2."""
    backend = _loaded_backend(tmp_path, "aot_inductor")
    written = save_pt2(backend, tmp_path / "out" / "model.pt2")
    assert written.read_bytes() == b"package bytes"
    assert sorted(p.name for p in written.parent.iterdir()) == ["model.pt2"]
    with pytest.raises(Pt2ExportError, match="must end in .pt2"):
        save_pt2(backend, tmp_path / "model.bin")


def test_save_pt2_refuses_what_is_not_one_pt2_graph(tmp_path: Path) -> None:
    """Unbuilt backends, other formats, other backends and several graphs are refused with what to do."""
    with pytest.raises(Pt2ExportError, match="has not been built or loaded yet"):
        save_pt2(TorchTensorRTAotBackend(), tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match="holds a 'torchscript' artifact.*output_format='aot_inductor'"):
        save_pt2(_loaded_backend(tmp_path, "torchscript"), tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match="Found no AITune module"):
        save_pt2(torch.nn.Linear(2, 2), tmp_path / "a.pt2")

    def eager_module(name: str) -> ait.Module:
        strategy = ait.OneBackendStrategy(backend=TorchEagerBackend())
        strategy.enable_performance_validation(False)
        strategy.enable_find_max_batch_size(False)
        return ait.Module(torch.nn.Linear(4, 4), name, strategy=strategy)

    one_graph, two_graphs = eager_module("one_graph"), eager_module("two_graphs")

    def call(x: torch.Tensor) -> torch.Tensor:
        one_graph(x)
        two_graphs(x)
        return two_graphs(x.unsqueeze(1))  # another input rank: AITune records a second graph

    ait.tune(call, [torch.randn(4), torch.randn(4)], batch_sizes=[1, 2], device="cpu")
    with pytest.raises(Pt2ExportError, match=r"tuned into 2 graphs .*Save each graph's backend to its own file"):
        save_pt2(two_graphs, tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match=r"tuned into 2 graphs"):  # found inside a model holding it too
        save_pt2(torch.nn.Sequential(two_graphs), tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match=r"runs on TorchEagerBackend\(\), not on aitune_trt_aot"):
        save_pt2(one_graph, tmp_path / "a.pt2")
