"""CPU: ``pt2.wrapper_split``, the wrapper compiled as a runtime shared by every model plus the model's own half.

The packages are CPU ones (AOTInductor compiles C++ kernels where the GPU's graphs call TensorRT engines); the
wrapper's layout, its interface and the model class are the same for both devices.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._inductor import cpp_builder

from aitune_trt_aot.pt2.lean_headers import PRECOMPILED
from aitune_trt_aot.pt2.object_reuse import reused_objects
from aitune_trt_aot.pt2.wrapper_split import (
    DECLARE_EXTERN,
    INSTANTIATE,
    INTERFACE_END,
    INTERFACE_INCLUDE,
    RUNTIME_FOLDER,
    compile_in_two,
    split_wrapper,
    undefined_model_symbols,
)
from tests.support.processes import kill_once_marked, subprocess_env

HEAD = ["", "#include <torch/csrc/inductor/aoti_include/cpu.h>", INTERFACE_INCLUDE, "#include <vector>", 'extern "C" {']
MODEL = ["namespace torch::aot_inductor {", "void AOTInductorModel::run_impl() {}", "}"]


def test_the_split_puts_the_interface_in_the_runtime_and_the_model_code_after_the_includes() -> None:
    """Runtime: the head as written plus the explicit instantiation.

    Model: the head's includes but the container's, the model's header, extern, its code.
    """
    parts = split_wrapper("\n".join([*HEAD, "int interface();", INTERFACE_END, *MODEL]))
    assert parts is not None
    assert parts.runtime.startswith("\n".join([*HEAD, "int interface();", INTERFACE_END]))
    assert parts.runtime.endswith(INSTANTIATE)
    assert "run_impl" not in parts.runtime
    assert "int interface();" not in parts.model
    assert INTERFACE_INCLUDE not in parts.model
    assert parts.model.index(HEAD[1]) < parts.model.index(DECLARE_EXTERN) < parts.model.index("run_impl")
    assert parts.model.endswith("\n".join(MODEL))


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("\n".join([*HEAD, *MODEL]), "no end of the interface"),
        ("\n".join([*HEAD, INTERFACE_END, INTERFACE_END, *MODEL]), "two ends"),
        ("\n".join([HEAD[1], INTERFACE_END, *MODEL]), "a head without AOTInductor's interface"),
        ("\n".join([*HEAD, INTERFACE_END, "", "  "]), "no model code"),
    ],
)
def test_a_wrapper_laid_out_otherwise_is_not_split(code: str, why: str) -> None:
    """Anything but one interface followed by model code: no split (the wrapper then compiles whole)."""
    assert split_wrapper(code) is None, why


def test_a_wrapper_that_cannot_be_split_is_left_to_the_whole_compile(tmp_path: Path) -> None:
    """False, no command run, nothing written where the command writes."""
    source = tmp_path / "abc.wrapper.cpp"
    source.write_text("int main() { return 0; }\n")
    ran: list[str] = []
    words = ["g++", str(source), "-c", "-o", str(tmp_path / "abc.wrapper.o")]
    assert not compile_in_two(words, str(tmp_path), lambda line, cwd: ran.append(line), tmp_path / "runtime")
    assert ran == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc.wrapper.cpp"]


def test_a_failing_half_leaves_nothing_and_falls_back(tmp_path: Path) -> None:
    """A compile of either half that fails: False, and no object, joined file or intermediate left behind."""
    source = tmp_path / "abc.wrapper.cpp"
    source.write_text("\n".join([*HEAD, INTERFACE_END, *MODEL]))

    def failing(line: str, cwd: str) -> None:
        raise subprocess.CalledProcessError(1, shlex.split(line), "error: something in the model's half")

    words = ["g++", str(source), "-c", "-o", str(tmp_path / "abc.wrapper.o")]
    assert not compile_in_two(words, str(tmp_path), failing, tmp_path / "runtime")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["abc.wrapper.cpp"], left


def test_a_model_symbol_left_undefined_is_found(tmp_path: Path) -> None:
    """An object that calls a model member it does not define lists it; one that defines it lists nothing."""
    declared = "namespace torch::aot_inductor { struct AOTInductorModel { void run_impl(); }; }\n"
    user, definer = tmp_path / "user.cpp", tmp_path / "definer.cpp"
    user.write_text(declared + "void call(torch::aot_inductor::AOTInductorModel& m) { m.run_impl(); }\n")
    definer.write_text(declared + "void torch::aot_inductor::AOTInductorModel::run_impl() {}\n")
    for source in (user, definer):
        subprocess.run(["g++", "-c", str(source), "-o", str(source.with_suffix(".o"))], check=True)
    assert len(undefined_model_symbols(tmp_path / "user.o")) == 1
    assert undefined_model_symbols(tmp_path / "definer.o") == []


def _package(model: nn.Module, path: Path, lines: list[str] | None = None) -> list[str]:
    """Compile ``model`` (dynamic batch) into a package at ``path``; the names of the files its commands wrote.

    ``lines``, where given, receives the command lines run.
    """
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(4, 16),), dynamic_shapes=({0: batch},))
    written: list[str] = []
    original = cpp_builder._run_compile_cmd

    def recording(line: str, cwd: str) -> None:
        words = shlex.split(line)
        written.append(Path(words[words.index("-o") + 1]).name if "-o" in words else "?")
        if lines is not None:
            lines.append(line)
        original(line, cwd)

    cpp_builder._run_compile_cmd = recording
    try:
        with reused_objects():
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs={"compile_threads": 1}
            )
    finally:
        cpp_builder._run_compile_cmd = original
    return written


def test_the_first_wrapper_compiles_the_runtime_and_a_second_model_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two models of different shapes: the runtime compiles once, each wrapper its model's half.

    The first build also prepares the lighter headers (``pt2.lean_headers``), which the second model's half compiles
    against. The packages compute their own models; no intermediate is left beside the wrappers.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    second = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    runtime_folder = tmp_path / "inductor" / RUNTIME_FOLDER

    written = _package(first, tmp_path / "first.pt2")
    runtimes = sorted(p.name for p in runtime_folder.glob("*.o"))
    assert len(runtimes) == 1, runtimes
    assert any(name.endswith(".wrapper.model.o") for name in written), written

    lean = [p.parent for p in runtime_folder.glob(f"lean-*/{PRECOMPILED}.gch")]
    assert len(lean) == 1, sorted(p.name for p in runtime_folder.iterdir())

    lines: list[str] = []
    written = _package(second, tmp_path / "second.pt2", lines)
    model_half = [shlex.split(line) for line in lines if ".wrapper.model.cpp" in line]
    assert len(model_half) == 1, lines
    assert f"-I{lean[0]}" in model_half[0]
    assert model_half[0][model_half[0].index("-include") + 1] == str(lean[0] / PRECOMPILED)
    assert sorted(p.name for p in runtime_folder.glob("*.o")) == runtimes, "one runtime serves both"
    assert not any(runtimes[0].removesuffix(".o") in name for name in written), "the runtime is not compiled again"
    assert any(name.endswith(".wrapper.model.o") for name in written), written
    assert not list((tmp_path / "inductor").rglob("*.model.*")), "the model halves are removed once joined"

    x = torch.randn(9, 16)
    with torch.no_grad():
        for name, model in (("first", first), ("second", second)):
            loaded = torch._inductor.aoti_load_package(str(tmp_path / f"{name}.pt2"))
            assert torch.allclose(loaded(x), model(x), atol=1e-5), name


RUNTIME_BUILDER = """
import shlex, subprocess, sys, time
from pathlib import Path
from aitune_trt_aot.pt2.wrapper_split import compile_runtime

folder, pause = Path(sys.argv[1]), float(sys.argv[2])

def run(line, cwd):
    subprocess.run(shlex.split(line), cwd=cwd, check=True)
    (folder / "compiled").touch()
    time.sleep(pause)  # a build killed here has compiled its object, not yet renamed it into place

words = ["g++", "x.wrapper.cpp", "-c", "-o", "x.wrapper.o"]
compile_runtime("int runtime_answer() { return 42; }\\n", words, str(folder), run, folder / "runtime.o")
"""


def test_the_shared_runtime_object_is_never_half_written_by_killed_or_concurrent_builds(tmp_path: Path) -> None:
    """The runtime folder is shared by every process of the machine.

    A build killed between its compile and the rename leaves no runtime object; two builds at once both succeed
    and leave one complete object.
    """
    script = tmp_path / "build_runtime.py"
    script.write_text(RUNTIME_BUILDER)
    folder = tmp_path / "runtime"
    folder.mkdir()
    command = [sys.executable, str(script), str(folder), "60"]
    assert kill_once_marked(command, folder / "compiled"), "the killed build never compiled"
    assert not (folder / "runtime.o").exists(), "a killed build must not leave the object in place"

    builders = [subprocess.Popen([sys.executable, str(script), str(folder), "0"], env=subprocess_env()) for _ in "ab"]
    assert [builder.wait(timeout=300) for builder in builders] == [0, 0]
    symbols = subprocess.run(["nm", str(folder / "runtime.o")], capture_output=True, text=True, check=True).stdout
    assert "runtime_answer" in symbols
