"""CPU: the ``.pt2`` format's config, input ranges, runtime checks, loader errors and ``save_pt2`` errors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from aitune.torch.checkpoint.artifact import ArtifactPath
from torch.utils import _pytree as pytree

from aitune_trt_aot import (
    ConfigError,
    Pt2ExportError,
    Pt2InputError,
    Pt2LoadError,
    TorchTensorRTAotBackend,
    TorchTensorRTAotBackendConfig,
    compat,
    save_pt2,
)
from aitune_trt_aot.checkpoint import CheckpointWriter
from aitune_trt_aot.pt2 import installed as pt2_installed
from aitune_trt_aot.pt2 import package as pt2_package
from aitune_trt_aot.pt2 import runtime as pt2_runtime
from aitune_trt_aot.pt2.package import BUILT_FOR_METADATA_KEY
from aitune_trt_aot.pt2.runtime import load_pt2
from aitune_trt_aot.ranges import InputRange, program_ranges
from aitune_trt_aot.stack import version_tuple
from tests.support.archives import flip_a_byte_inside
from tests.support.entries import BUILT_FOR
from tests.support.fake_pt2 import FakeEngine, FakeLoader, recognise_fake_engines
from tests.support.processes import run_python, subprocess_env
from tests.support.tuning import one_and_two_graph_modules

# What the fake installed stack below holds (BUILT_FOR's versions).
INSTALLED = {"tensorrt_flavour": "TensorRT-RTX", "tensorrt": "1.6.1.120", "torch_tensorrt": "2.14.0"}
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what follows on a machine without CUDA")


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
    assert program_ranges(program) == [InputRange(None, "tensor 0", (1, 64), None, (16, 64), torch.float32)]


def test_a_package_range_names_what_is_wrong() -> None:
    """A .pt2 input's range: rank, per-axis bounds and dtype are checked; unchecked axes and unbounded maxima pass.

    The same check and text as the call guard's ranges (one ``InputRange`` type); the JSON form round-trips.
    """
    spec = InputRange.from_json({"dims": [[1, 16], None, [8, None]], "dtype": "torch.float32"}, "tensor 0")
    assert spec.violation(torch.zeros(4, 3, 8)) is None
    assert spec.violation(torch.zeros(4, 99, 1000)) is None
    assert spec.violation(torch.zeros(17, 3, 8)) == (
        "has shape (17, 3, 8): dimension 0 is 17, outside the built range 1..16"
    )
    assert spec.violation(torch.zeros(4, 3, 7)) == "has shape (4, 3, 7): dimension 2 is 7, outside the built range 8.."
    assert spec.violation(torch.zeros(4, 3)) == "has 2 dimensions (4, 3), the engine takes 3"
    assert spec.violation(torch.zeros(4, 3, 8, dtype=torch.float16)) == (
        "has dtype torch.float16, the engine was built for torch.float32"
    )
    assert spec.describe() == "[1..16, ?, 8..] float32"
    assert InputRange.from_json(json.loads(json.dumps(spec.to_json())), "tensor 0") == spec


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


def _write_package(path: Path, built_for: dict[str, Any] | None = None, *, metadata: bool = True) -> Path:
    """A zip laid out like an AOTInductor package (stored entries, as PyTorch writes them).

    The metadata is where AOTInductor puts it: ``<root>/data/aotinductor/<model>/<hash>.wrapper_metadata.json``.
    """
    root, model = f"{path.stem}/data", f"{path.stem}/data/aotinductor/model"
    values = {"AOTI_DEVICE_KEY": "cuda", "AOTI_COMPUTE_CAPABILITY": "90"}
    if built_for is not None:
        values[BUILT_FOR_METADATA_KEY] = json.dumps(built_for)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{path.stem}/archive_format", "pt2")
        archive.writestr(f"{model}/cabc.wrapper.so", b"\x7fELF" + bytes(range(256)) * 16)
        if metadata:
            archive.writestr(f"{model}/cabc.wrapper_metadata.json", json.dumps(values))
        archive.writestr(f"{root}/constants/custom_obj_0", bytes(range(256)) * 64)
    return path


@pytest.fixture
def installed_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Torch-TensorRT-RTX 2.14.0 + TensorRT-RTX 1.6.1.120 install on sys.path, laid out as their wheels install.

    Its ``torch_tensorrt/__init__.py`` raises: the .pt2 runtime must read the versions without importing it.
    """
    site = tmp_path / "site"
    files = {
        "torch_tensorrt/__init__.py": "raise ImportError('the .pt2 runtime must not import torch_tensorrt')\n",
        "torch_tensorrt/_version.py": '__version__ = "2.14.0"\n__tensorrt_rtx_version__ = "1.6.1"\n',
        "torch_tensorrt_rtx-2.14.0.dist-info/METADATA": "Name: torch-tensorrt-rtx\nVersion: 2.14.0\n",
        "tensorrt_rtx_bindings/__init__.py": "raise ImportError('not to be imported')\n__version__ = \"1.6.1.120\"\n",
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    for module in ("torch_tensorrt", "tensorrt_rtx_bindings"):  # where a GPU machine's test run imported them
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_installed_stack_is_read_from_files_without_importing_it(installed_stack: Path) -> None:
    """Torch-TensorRT's flavour and version and TensorRT's version come from the installed files alone."""
    here = pt2_installed.installed_environment()
    assert {key: here[key] for key in INSTALLED} == INSTALLED
    assert here["torch"] == torch.__version__
    assert "torch_tensorrt" not in sys.modules


def test_load_pt2_refuses_a_bit_flipped_package(tmp_path: Path) -> None:
    """One flipped bit inside an entry (the zip directory intact) fails the entry's CRC32, before any loading."""
    package = _write_package(tmp_path / "model.pt2", BUILT_FOR | {"torch": torch.__version__})
    pt2_package.check_intact(package)  # passes before the flip
    flip_a_byte_inside(package, "model/data/constants/custom_obj_0")
    assert zipfile.is_zipfile(package)
    with pytest.raises(Pt2LoadError) as error:
        load_pt2(package)
    message = str(error.value)
    assert message.startswith(f"{package} is damaged or incomplete: its entry model/data/constants/custom_obj_0")
    assert "Bad CRC-32" in message and "Write it again with aitune_trt_aot.save_pt2, or restore a good copy" in message


def test_load_pt2_refuses_a_package_built_for_another_stack(tmp_path: Path, installed_stack: Path) -> None:
    """Another Torch-TensorRT, TensorRT or torch release: refused naming both sides, before any CUDA check."""
    cases = [
        ({"torch_tensorrt": "2.99.0"}, "Torch-TensorRT 2.99.0", "Torch-TensorRT 2.14.0", "torch_tensorrt"),
        ({"tensorrt": "0.1"}, "TensorRT-RTX 0.1", "TensorRT-RTX 1.6.1.120", "tensorrt"),
        ({"tensorrt_flavour": "TensorRT"}, "TensorRT 1.6.1.120", "TensorRT-RTX 1.6.1.120", "tensorrt_flavour"),
        ({"torch": "1.13.1"}, "torch 1.13.1", f"torch {torch.__version__}", "torch"),
    ]
    for change, built, here, key in cases:
        package = _write_package(tmp_path / "model.pt2", BUILT_FOR | {"torch": torch.__version__} | change)
        with pytest.raises(Pt2LoadError) as error:
            load_pt2(package)
        message = str(error.value)
        assert message.startswith(f"Cannot run {package}: it was built for NVIDIA H200 (sm 9.0), "), message
        assert built in message.split("this machine has")[0] and here in message.split("this machine has")[1]
        assert key in message.split("differs in: ")[1].split(")")[0].split(", ")
        assert "re-tune and re-export it on this machine" in message
    assert "torch_tensorrt" not in sys.modules


def test_torch_release_is_compared_without_the_patch_or_build(tmp_path: Path) -> None:
    """Torch is always known here: a package of another release is refused, another patch or build is not."""
    major, minor = version_tuple(torch.__version__)
    package = _write_package(tmp_path / "model.pt2", BUILT_FOR | {"torch": f"{major}.{minor + 1}.0"})
    with pytest.raises(Pt2LoadError, match=r"differs in: (.*, )?torch\). .*re-tune and re-export"):
        load_pt2(package)
    same_release = f"{major}.{minor}.99+elsewhere"
    assert compat.mismatch(BUILT_FOR | {"torch": same_release}, {"torch": torch.__version__}, ("torch",)) is None


@needs_no_cuda
def test_intact_package_built_for_this_stack_gets_as_far_as_the_cuda_check(
    tmp_path: Path, installed_stack: Path
) -> None:
    """Matching, partly unknown (no GPU here) or missing build records pass; CUDA is then what is missing."""
    major, minor = version_tuple(torch.__version__)
    packages = {
        "matching": _write_package(tmp_path / "a.pt2", BUILT_FOR | {"torch": f"{major}.{minor}.0+other"}),
        "no record": _write_package(tmp_path / "b.pt2"),
        "no metadata": _write_package(tmp_path / "c.pt2", metadata=False),
    }
    for case, package in packages.items():
        with pytest.raises(Pt2LoadError, match="CUDA is not available here"):
            load_pt2(package)
        assert (BUILT_FOR_METADATA_KEY in pt2_package.package_metadata(package)) == (case == "matching")
    assert "torch_tensorrt" not in sys.modules


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
    assert pt2_package.model_names(package) == ["a", "b"]


def test_runtime_library_missing_is_explained() -> None:
    """Without Torch-TensorRT the loader and the CMake helper say which library is needed."""
    try:
        found = pt2_installed.runtime_library()
    except Pt2LoadError as error:
        assert "libtorchtrt_runtime.so" in str(error) and "without importing torch_tensorrt" in str(error)
        result = run_python("-m", "aitune_trt_aot.pt2.paths", "--runtime-library")
        assert result.returncode == 1 and "libtorchtrt_runtime.so" in result.stderr
    else:
        assert found.name == "libtorchtrt_runtime.so"


def test_library_dirs_for_cmake_are_the_folders_torch_loaded_from() -> None:
    """``--library-dirs`` gives CMake the folders of the libraries torch loads, not Python modules' or the system's."""
    result = run_python("-m", "aitune_trt_aot.pt2.paths", "--library-dirs")
    assert result.returncode == 0, result.stderr
    folders = [Path(folder) for folder in result.stdout.strip().split(";")]
    assert Path(torch.__file__).parent / "lib" in folders
    assert not [f for f in folders if f.as_posix() in ("/usr/lib", "/lib", "/usr/lib/x86_64-linux-gnu")]
    assert all(any(child.name.startswith("lib") for child in folder.iterdir()) for folder in folders)


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

    one_graph, two_graphs = one_and_two_graph_modules("pt2")
    with pytest.raises(Pt2ExportError, match=r"tuned into 2 graphs .*Save each graph's backend to its own file"):
        save_pt2(two_graphs, tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match=r"tuned into 2 graphs"):  # found inside a model holding it too
        save_pt2(torch.nn.Sequential(two_graphs), tmp_path / "a.pt2")
    with pytest.raises(Pt2ExportError, match=r"runs on TorchEagerBackend\(\), not on aitune_trt_aot"):
        save_pt2(one_graph, tmp_path / "a.pt2")


def test_package_builds_take_turns_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one process compiles a package (holds the lock), another cannot start compiling in the same cache."""
    import filelock

    from aitune_trt_aot.formats.aot_inductor import packaging_lock

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from aitune_trt_aot.formats.aot_inductor import packaging_lock\n"
            "with packaging_lock():\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(filelock.Timeout):
            packaging_lock().acquire(timeout=0.5)
    finally:
        holder.communicate("\n", timeout=60)
    with packaging_lock().acquire(timeout=5):  # free again once the other process is done
        pass


class _RecordingGraphs:
    """Stands in for ``CudaGraphRunner`` (which needs CUDA): records how it was made, calls straight through."""

    def __init__(self, runner: Any, device: torch.device, fall_back: bool = False) -> None:
        self.runner, self.device, self.fall_back = runner, device, fall_back

    def __call__(self, *args: Any) -> Any:
        return self.runner(*args)


@pytest.fixture
def loads_without_cuda(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """``load_pt2`` gets as far as making the loader on this machine: CUDA, libraries and the loader are stand-ins.

    Returns the list each loader's constructor arguments are appended to. The TensorRT-RTX flavour is installed.
    """
    made: list[tuple] = []
    engines = {"custom_obj_0": FakeEngine()}

    def loader(*args: Any) -> FakeLoader:
        made.append(args)
        return FakeLoader({}, custom_objects=engines)

    recognise_fake_engines(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch._C._aoti, "AOTIModelPackageLoader", loader)
    monkeypatch.setattr(pt2_runtime, "resolve_device", lambda device, error: torch.device("cuda", 0))
    monkeypatch.setattr(pt2_runtime, "current_device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(pt2_runtime, "load_tensorrt_runtime", lambda: None)
    monkeypatch.setattr(pt2_runtime, "share_cxx_runtime", lambda: None)
    monkeypatch.setattr(pt2_runtime, "CudaGraphRunner", _RecordingGraphs)
    monkeypatch.setattr(pt2_runtime, "installed_torch_tensorrt", lambda: ("TensorRT-RTX", "2.14.0"))
    made.append(engines["custom_obj_0"])  # the first item: the package's one engine
    return made


def _kernels_package(path: Path, kernel_specialization: str | None) -> Path:
    """A package (:func:`_write_package`) whose metadata records ``kernel_specialization`` (None: nothing)."""
    package = _write_package(path)
    if kernel_specialization is None:
        return package
    with zipfile.ZipFile(package) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    name = next(n for n in entries if n.endswith(pt2_package.METADATA_SUFFIX))
    metadata = json.loads(entries[name]) | {pt2_package.KERNELS_METADATA_KEY: kernel_specialization}
    entries[name] = json.dumps(metadata).encode()
    with zipfile.ZipFile(package, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return package


@pytest.mark.parametrize(
    ("recorded", "cuda_graphs", "captured", "strategy"),
    [
        (None, "auto", True, 1),  # eager kernels before capture
        ("none", True, True, 2),
        (None, False, False, 0),  # lazy: TensorRT-RTX's default
        ("lazy", "auto", False, 0),  # lazy kernels are never captured
    ],
)
def test_load_pt2_makes_a_single_threaded_runner_captures_and_sets_the_kernel_strategy(
    tmp_path: Path, loads_without_cuda: list, recorded: str | None, cuda_graphs: Any, captured: bool, strategy: int
) -> None:
    """The loader is single-threaded (capturable); graphs as ``cuda_graphs`` says; the engines get the strategy."""
    engine, *_ = loads_without_cuda
    model = load_pt2(_kernels_package(tmp_path / "model.pt2", recorded), cuda_graphs=cuda_graphs)
    [arguments] = loads_without_cuda[1:]
    assert arguments == (str(tmp_path / "model.pt2"), "model", True, 1, 0)  # run_single_threaded=True, one runner
    assert (model.graphs is not None) == captured
    if captured:
        assert model.graphs.fall_back == (cuda_graphs == "auto") and model.graphs.device == torch.device("cuda", 0)
    assert engine.settings == [(strategy, 0, None)], "the package's kernel specialization, no TensorRT-RTX graphs"


def test_load_pt2_leaves_the_engines_alone_where_asked_or_on_standard_tensorrt(
    tmp_path: Path, loads_without_cuda: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The .ait activation sets the engines itself (with the kernel cache); standard TensorRT has no such settings."""
    engine, *_ = loads_without_cuda
    package = _kernels_package(tmp_path / "model.pt2", "eager")
    load_pt2(package, cuda_graphs=False, runtime_settings=False)
    monkeypatch.setattr(pt2_runtime, "installed_torch_tensorrt", lambda: ("TensorRT", "2.14.0"))
    load_pt2(package)
    assert engine.settings == []
    with pytest.raises(ConfigError, match="cuda_graphs must be True, False or 'auto', got 'always'"):
        load_pt2(package, cuda_graphs="always")
    with pytest.raises(ConfigError, match="lazy.pt2 was built with kernel_specialization='lazy', and .* cannot"):
        load_pt2(_kernels_package(tmp_path / "lazy.pt2", "lazy"), cuda_graphs=True)


def test_the_package_compile_runs_without_the_worker_pool_and_records_the_kernel_strategy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AOTInductor's compile gets compile_threads=1, an -O0 wrapper, no pattern passes nor their set-up, for that call.

    The metadata records the config's kernel_specialization for load_pt2.
    """
    from torch._inductor import config as inductor_config
    from torch._inductor.fx_passes import joint_graph

    from aitune_trt_aot.compiled import CompiledModel, Coverage
    from aitune_trt_aot.formats.aot_inductor import PACKAGE_COMPILE_CONFIGS, AotInductorFormat

    seen: dict[str, Any] = {}

    def compile_and_package(program: Any, package_path: str, inductor_configs: dict[str, Any]) -> str:
        seen.update(inductor_configs)
        seen["joint_graph_setup"] = joint_graph.lazy_init
        return package_path

    def pattern_setup(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the joint-graph pattern set-up ran")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_and_package)
    monkeypatch.setattr(joint_graph, "lazy_init", pattern_setup)
    threads, wrapper_level = inductor_config.compile_threads, inductor_config.aot_inductor.compile_wrapper_opt_level
    environment = dict(os.environ)
    compiled = CompiledModel(
        module=torch.nn.Linear(8, 4),
        sample=((torch.randn(3, 8),), {}),
        coverage=Coverage(engines=1, tensorrt_ops=1, pytorch_ops=0),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=16)},),
        kernel_specialization="none",
    )
    AotInductorFormat().save(compiled, tmp_path / "model.pt2", pickle_protocol=5)
    assert PACKAGE_COMPILE_CONFIGS == {
        "compile_threads": 1,
        "aot_inductor.compile_wrapper_opt_level": "O0",
        "pattern_matcher": False,
    }
    assert {key: seen[key] for key in PACKAGE_COMPILE_CONFIGS} == PACKAGE_COMPILE_CONFIGS
    assert seen["aot_inductor.metadata"][pt2_package.KERNELS_METADATA_KEY] == "none"
    assert seen["joint_graph_setup"] is not pattern_setup and seen["joint_graph_setup"]() is None
    assert joint_graph.lazy_init is pattern_setup, "the joint-graph pattern set-up is skipped for the package only"
    assert dict(os.environ) == environment
    assert (inductor_config.compile_threads, inductor_config.aot_inductor.compile_wrapper_opt_level) == (
        threads,
        wrapper_level,
    ), "nothing changed for the rest of the process"
