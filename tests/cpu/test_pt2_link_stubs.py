"""CPU: links against stubs of torch's libraries (``pt2.link_stubs``) give the library a real link gives.

A small library calling torch's C shim is linked both ways with torch's real libraries on the command; the two have
the same ``NEEDED`` entries and the same undefined dynamic symbols, and the stub-linked one, loaded beside torch, calls
into libtorch_cpu. Packages linked this way are also built and run by ``test_pt2_object_reuse.py`` (every link of
``reused_objects`` goes through the stubs).
"""

from __future__ import annotations

import ctypes
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from aitune_trt_aot.pt2 import link_stubs
from aitune_trt_aot.pt2.compiler import FAILED
from aitune_trt_aot.pt2.link_stubs import (
    READY,
    STUBS_FOLDER,
    link_with_stubs,
    searched_libraries,
    stub_source,
    stubbed_command,
)

TORCH_LIB = Path(torch.__file__).parent / "lib"
SOURCE = """
#include <cstdint>
#include <string>
extern "C" int32_t aoti_torch_device_type_cpu();
extern "C" int call_torch() { return aoti_torch_device_type_cpu() + 7; }
extern "C" int string_size(const char* text) { return static_cast<int>(std::string(text).size()); }
"""


def _run(cmd_line: str, cwd: str) -> None:
    subprocess.run(shlex.split(cmd_line), cwd=cwd, check=True, capture_output=True, timeout=120)


def _object(tmp_path: Path) -> Path:
    source = tmp_path / "caller.cpp"
    source.write_text(SOURCE)
    _run(f"g++ -fPIC -O0 -c {source} -o {tmp_path / 'caller.o'}", str(tmp_path))
    return tmp_path / "caller.o"


def _link(obj: Path, output: Path) -> list[str]:
    return ["g++", str(obj), "-shared", "-fPIC", "-o", str(output), "-ltorch", "-ltorch_cpu", f"-L{TORCH_LIB}"]


def _dynamic(path: Path) -> tuple[list[str], list[str]]:
    needed = subprocess.run(["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    undefined = subprocess.run(["nm", "-D", "-u", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1].strip("[]") for line in needed.splitlines() if "(NEEDED)" in line], sorted(
        undefined.split()
    )


def test_a_library_linked_against_stubs_needs_and_imports_what_the_real_link_gives(tmp_path: Path) -> None:
    """Same NEEDED entries and undefined symbols as the link against torch's real libraries; it runs beside torch."""
    obj = _object(tmp_path)
    real, stubbed = tmp_path / "real.so", tmp_path / "stubbed.so"
    _run(shlex.join(_link(obj, real)), str(tmp_path))
    assert link_with_stubs(_link(obj, stubbed), str(tmp_path), _run, tmp_path / "runtime")
    assert _dynamic(stubbed) == _dynamic(real)
    assert "libtorch_cpu.so" in _dynamic(stubbed)[0]

    [folder] = (tmp_path / "runtime" / STUBS_FOLDER).iterdir()
    assert (folder / READY).read_text().split() == ["torch_cpu"], "libtorch.so is small: linked as it is"
    stub = folder / "torch_cpu" / "libtorch_cpu.so"
    defined = subprocess.run(["nm", "-D", "--defined-only", str(stub)], capture_output=True, text=True).stdout
    assert [line.split()[-1] for line in defined.splitlines()] == ["aoti_torch_device_type_cpu"]
    assert stub.stat().st_size < 20_000

    library = ctypes.CDLL(str(stubbed))
    assert library.call_torch() == 7, "aoti_torch_device_type_cpu() is 0, from the real libtorch_cpu"
    assert library.string_size(b"four") == 4


def test_the_same_references_reuse_their_stubs_without_reading_a_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second link with the same references and libraries finds its stubs by the digest and reads no library."""
    obj = _object(tmp_path)
    first = stubbed_command(_link(obj, tmp_path / "a.so"), str(tmp_path), tmp_path / "runtime")
    monkeypatch.setattr(link_stubs, "read_library", lambda *args: pytest.fail("a library was read again"))
    second = stubbed_command(_link(obj, tmp_path / "b.so"), str(tmp_path), tmp_path / "runtime")
    assert first is not None and second is not None and first.folder == second.folder
    assert first.command[1] == second.command[1] == f"-L{first.folder / 'torch_cpu'}"


def test_libraries_are_found_as_ld_finds_them(tmp_path: Path) -> None:
    """Each ``-l`` in the first ``-L`` folder that has it, in command order; system libraries and archives left out."""
    for folder, name in (("a", "x"), ("b", "x"), ("b", "y"), ("a", "s"), ("b", "s")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"lib{name}.so").write_bytes(b"")
    (tmp_path / "a" / "libs.so").unlink()
    (tmp_path / "a" / "libs.a").write_bytes(b"")
    folders = [f"-L{tmp_path / 'a'}", "-L", str(tmp_path / "b")]
    words = ["g++", "o.o", "-ly", "-l", "x", "-lm", "-ls", *folders, "-l:libz.a"]
    assert searched_libraries(words) == [("y", tmp_path / "b" / "liby.so"), ("x", tmp_path / "a" / "libx.so")]


def test_a_stub_defines_each_symbol_as_the_library_does() -> None:
    """Functions and data, global or weak, keep their kind; nothing else is in the stub."""
    source = stub_source({"f": "function", "g": "weak function", "d": "object", "v": "weak object"})
    assert ".globl f\n.type f, @function" in source and ".weak g\n.type g, @function" in source
    assert ".globl d\n.type d, @object" in source and ".weak v\n.type v, @object" in source


def test_a_failed_stub_link_leaves_the_link_as_written(tmp_path: Path) -> None:
    """The stubbed command failing returns False (the caller runs AOTInductor's own link), and is remembered."""
    obj = _object(tmp_path)
    ran: list[str] = []

    def failing(cmd_line: str, cwd: str) -> None:
        ran.append(cmd_line)
        raise RuntimeError("ld: something went wrong")

    assert not link_with_stubs(_link(obj, tmp_path / "c.so"), str(tmp_path), failing, tmp_path / "runtime")
    assert len(ran) == 1 and STUBS_FOLDER in ran[0]
    [folder] = (tmp_path / "runtime" / STUBS_FOLDER).iterdir()
    assert "something went wrong" in (folder / FAILED).read_text()
    assert not link_with_stubs(_link(obj, tmp_path / "c.so"), str(tmp_path), failing, tmp_path / "runtime")
    assert len(ran) == 1, "the same stubs are not tried again"


def test_versioned_or_nameless_libraries_get_no_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library whose symbols carry versions is linked as it is; with no other large library, nothing changes."""
    monkeypatch.setattr(link_stubs, "STUB_MIN_SYMBOLS", 1)
    (tmp_path / "v.map").write_text("V1 { global: versioned; local: *; };\n")
    (tmp_path / "v.c").write_text("int versioned(void) { return 1; }\n")
    _run(
        f"gcc -shared -fPIC {tmp_path / 'v.c'} -Wl,--version-script={tmp_path / 'v.map'} -Wl,-soname,libv.so "
        f"-o {tmp_path / 'libv.so'}",
        str(tmp_path),
    )
    (tmp_path / "use.c").write_text("int versioned(void);\nint use(void) { return versioned(); }\n")
    _run(f"gcc -fPIC -c {tmp_path / 'use.c'} -o {tmp_path / 'use.o'}", str(tmp_path))
    words = ["gcc", str(tmp_path / "use.o"), "-shared", "-o", str(tmp_path / "use.so"), "-lv", f"-L{tmp_path}"]
    assert link_stubs.read_library("v", tmp_path / "libv.so") is None
    assert stubbed_command(words, str(tmp_path), tmp_path / "runtime") is None
