"""CPU: ``pt2.lean_headers``, the model half's copy of AOTInductor's ``model_base.h`` without its regular expression.

The package compile that uses them is ``test_pt2_wrapper_split``'s; here: the copy's text, the commands, and that a
failure to build them leaves nothing half-written and is not tried again.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import torch

from aitune_trt_aot.pt2.compiler import FAILED
from aitune_trt_aot.pt2.lean_headers import (
    LEFT_OUT,
    MODEL_BASE,
    PRECOMPILED,
    include_folders,
    lean_headers,
    precompile_command,
    without_regex,
)
from tests.support.processes import kill_once_marked, subprocess_env

TORCH_INCLUDE = Path(torch.__file__).parent / "include"
FUNCTION = 'inline void parse_device_str(const std::string& s, int& t) {\n  std::regex re("x");\n  { t = 1; }\n}\n'


def test_the_installed_header_loses_the_body_and_the_regex_and_keeps_the_declaration() -> None:
    """The installed ``model_base.h``: one declaration of the function left, no regular expression anywhere."""
    original = (TORCH_INCLUDE / MODEL_BASE).read_text()
    lean = without_regex(original)
    assert lean is not None
    assert "regex" not in lean
    assert lean.count(f"{LEFT_OUT}(") == original.count(f"{LEFT_OUT}(")  # its declaration and its caller stay
    declaration = lean[lean.index(f"inline void {LEFT_OUT}(") :]
    assert declaration[: declaration.index(")") + 2].endswith(");")
    assert len(lean) < len(original)


def test_a_header_of_other_text_is_left_alone() -> None:
    """No definition, two, no ``<regex>`` include, or a regular expression used elsewhere: None."""
    include = "#include <regex>\n"
    assert without_regex(include + FUNCTION) is not None
    assert without_regex(include + "inline int other() { return 0; }\n") is None
    assert without_regex(include + FUNCTION + FUNCTION) is None
    assert without_regex(FUNCTION) is None
    assert without_regex(include + FUNCTION + "inline std::regex another();\n") is None


def test_the_precompile_command_is_the_model_command_without_its_source_include_and_c() -> None:
    """Same options, the header compiled as a C++ header into the given file."""
    words = ["g++", "a.wrapper.cpp", "-DX", "-include", "pch.h", "-I/inc", "-c", "-o", "a.wrapper.o"]
    command = precompile_command(words, Path("/f/precompiled.h"), Path("/f/out.gch"))
    assert command == ["g++", "-x", "c++-header", "/f/precompiled.h", "-DX", "-I/inc", "-o", "/f/out.gch"]
    assert include_folders(["g++", "-I/a", "-I", "/b", "-Ic"]) == [Path("/a"), Path("/b"), Path("c")]


def _command(tmp_path: Path) -> list[str]:
    (tmp_path / "pch.h").write_text("#include <vector>\n")
    return ["g++", "a.wrapper.cpp", "-include", "pch.h", f"-I{TORCH_INCLUDE}", "-c", "-o", "a.wrapper.o"]


def test_the_lean_command_finds_the_copy_first_and_includes_its_precompiled_header(tmp_path: Path) -> None:
    """Built once: the copy, the header and its ``.gch`` in a folder named by digest; the command uses them."""
    words = _command(tmp_path)
    lean = lean_headers(words, str(tmp_path), tmp_path / "runtime")
    assert lean is not None and not lean.ready
    lean.build(str(tmp_path), lambda line, cwd: subprocess.run(shlex.split(line), cwd=cwd, check=True))
    assert lean.ready
    assert (lean.folder / MODEL_BASE).read_text() == without_regex((TORCH_INCLUDE / MODEL_BASE).read_text())
    assert (lean.folder / PRECOMPILED).read_text() == "#include <vector>\n"
    command = lean.command
    assert command[:2] == ["g++", f"-I{lean.folder}"]
    assert command[command.index("-include") + 1] == str(lean.folder / PRECOMPILED)
    again = lean_headers(words, str(tmp_path), tmp_path / "runtime")
    assert again is not None and again.ready and again.folder == lean.folder


def test_a_failed_build_leaves_no_precompiled_header_and_is_not_tried_again(tmp_path: Path) -> None:
    """The compile fails: no ``.gch`` (nor a temporary one), a marker saying why; the next model keeps AOTInductor's."""
    words = _command(tmp_path)
    lean = lean_headers(words, str(tmp_path), tmp_path / "runtime")
    assert lean is not None

    def failing(line: str, cwd: str) -> None:
        raise subprocess.CalledProcessError(1, shlex.split(line), "error: no such option")

    lean.build(str(tmp_path), failing)  # logged, not raised
    assert not lean.ready
    assert sorted(p.name for p in lean.folder.iterdir()) == [FAILED, PRECOMPILED, "torch"]
    assert (lean.folder / FAILED).read_text() == "error: no such option\n", "the marker says why"
    assert lean_headers(words, str(tmp_path), tmp_path / "runtime") is None


LEAN_BUILDER = """
import shlex, subprocess, sys, time
from pathlib import Path
from aitune_trt_aot.pt2.lean_headers import lean_headers

folder, pause = Path(sys.argv[1]), float(sys.argv[2])
(folder / "pch.h").write_text("#include <vector>\\n")
words = ["g++", "a.wrapper.cpp", "-include", "pch.h", f"-I{sys.argv[3]}", "-c", "-o", "a.wrapper.o"]

def run(line, cwd):
    subprocess.run(shlex.split(line), cwd=cwd, check=True)
    (folder / "compiled").touch()
    time.sleep(pause)  # a build killed here has compiled its header, not yet renamed it into place

lean = lean_headers(words, str(folder), folder / "runtime")
lean.build(str(folder), run)
assert lean.ready
"""


def test_the_shared_lighter_headers_are_never_half_written_by_killed_or_concurrent_builds(tmp_path: Path) -> None:
    """The folder is shared by every process of the machine (Inductor's cache folder).

    A build killed between its compile and the rename leaves no precompiled header (so none is used half-written);
    two builds at once both succeed and leave a usable one.
    """
    script = tmp_path / "build_lean.py"
    script.write_text(LEAN_BUILDER)
    command = [sys.executable, str(script), str(tmp_path), "60", str(TORCH_INCLUDE)]
    assert kill_once_marked(command, tmp_path / "compiled"), "the killed build never compiled"
    assert not list((tmp_path / "runtime").rglob(f"{PRECOMPILED}.gch")), "a killed build must not leave the .gch"

    command[3] = "0"
    builders = [subprocess.Popen(command, env=subprocess_env()) for _ in "ab"]
    assert [builder.wait(timeout=300) for builder in builders] == [0, 0]
    lean = lean_headers(_command(tmp_path), str(tmp_path), tmp_path / "runtime")
    assert lean is not None and lean.ready
