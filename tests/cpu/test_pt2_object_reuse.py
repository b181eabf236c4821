"""CPU: ``pt2.object_reuse`` around a real AOTInductor package compile.

The graph is a CPU one (AOTInductor compiles C++ kernels for it where the GPU's graphs call TensorRT engines); what
is tested is the same: which compiles are skipped, which run, and that a package built with reused objects computes
its own model, not the one whose objects it reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from aitune_trt_aot.pt2.object_reuse import (
    STAMP_SUFFIX,
    inputs_digest,
    link_target,
    object_target,
    reuse_target,
    reused_objects,
)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _package(model: nn.Module, path: Path) -> list[str]:
    """Compile ``model`` (dynamic batch) into a package at ``path``; the names of the objects reused."""
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(4, 16),), dynamic_shapes=({0: batch},))
    with reused_objects() as reused:
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"compile_threads": 1}
        )
    return list(reused)


def test_a_rebuild_of_the_same_code_reuses_its_objects_and_other_code_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model again reuses its wrapper's object and its link; a model of other weights (other code) compiles.

    On the CPU Inductor folds the model's small constants into the kernel code, so other weights are other code;
    for a graph of TensorRT engines the weights stay in the engines. Every package computes its own model.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    first, second = _model(0), _model(1)
    assert _package(first, tmp_path / "first.pt2") == [], "nothing compiled before: nothing reused"
    reused = _package(first, tmp_path / "again.pt2")
    assert any(name.endswith("wrapper.o") for name in reused), reused
    assert any(name.endswith("wrapper.so") for name in reused), "the same objects: the link is reused too"
    assert not any(name.endswith("weights.o") for name in reused), "the constants' assembly always compiles"
    assert list((tmp_path / "inductor").rglob(f"*wrapper.o{STAMP_SUFFIX}")), "stamps sit beside the objects"
    assert list((tmp_path / "inductor").rglob(f"*wrapper.so{STAMP_SUFFIX}")), "and beside the library"
    other = _package(second, tmp_path / "second.pt2")
    assert not any(name.endswith(("kernel.o", "wrapper.so")) for name in other), other
    x = torch.randn(7, 16)
    with torch.no_grad():
        for name, model in (("first", first), ("again", first), ("second", second)):
            loaded = torch._inductor.aoti_load_package(str(tmp_path / f"{name}.pt2"))
            assert torch.allclose(loaded(x), model(x), atol=1e-5), name
        assert not torch.allclose(second(x), first(x), atol=1e-3)


def test_only_compiles_to_objects_and_links_of_objects_are_candidates() -> None:
    """A compile-only command names its object, a link of objects its library; anything else always runs."""
    assert object_target(["g++", "a.cpp", "-c", "-o", "/c/a.o"]) == Path("/c/a.o")
    assert object_target(["g++", "a.o", "b.o", "-shared", "-o", "/c/a.so"]) is None
    assert link_target(["g++", "a.o", "b.o", "-shared", "-fPIC", "-o", "/c/a.so", "-ltorch"]) == Path("/c/a.so")
    assert link_target(["g++", "a.cpp", "-shared", "-o", "/c/a.so"]) is None, "a source compiled into the library"
    assert link_target(["g++", "a.o", "w.S", "-shared", "-o", "/c/a.so"]) is None, "assembly the digest cannot see"
    assert link_target(["g++", "a.o", "-o", "/c/a.out"]) is None, "an executable"
    assert link_target(["g++", "a.cpp", "-shared", "-c", "-o", "/c/a.o"]) is None
    assert reuse_target(["g++", "-x", "c++-header", "h.h", "-c", "-o", "/c/h.h.gch"]) is None
    assert reuse_target(["g++", "a.cpp", "-c"]) is None
    assert reuse_target(["g++", "w.weights.S", "-c", "-o", "/c/w.weights.o"]) is None, "data the digest cannot see"
    assert reuse_target(["g++", "a.o", "-shared", "-o", "/c/a.so"]) == Path("/c/a.so")


def test_the_digest_follows_the_source_the_command_and_the_included_header(tmp_path: Path) -> None:
    """A changed source, flag or ``-include``d file gives another digest; the same inputs the same one."""
    source, header = tmp_path / "w.cpp", tmp_path / "pre.h"
    source.write_text("int f() { return 1; }\n")
    header.write_text("#pragma once\n")
    words = ["c++", str(source), "-include", str(header), "-O0", "-c", "-o", str(tmp_path / "w.o")]
    digest = inputs_digest(words, str(tmp_path))
    assert inputs_digest(list(words), str(tmp_path)) == digest
    assert inputs_digest([*words[:4], "-O1", *words[5:]], str(tmp_path)) != digest
    header.write_text("#pragma once\n#define X 1\n")
    changed_header = inputs_digest(words, str(tmp_path))
    assert changed_header != digest
    source.write_text("int f() { return 2; }\n")
    assert inputs_digest(words, str(tmp_path)) not in (digest, changed_header)


def test_a_links_digest_follows_the_bytes_of_its_objects(tmp_path: Path) -> None:
    """A link of the same objects gives the same digest; another object's bytes, another digest."""
    first, second = tmp_path / "a.o", tmp_path / "b.o"
    first.write_bytes(b"\x7fELF one")
    second.write_bytes(b"\x7fELF two")
    words = ["c++", str(first), str(second), "-shared", "-o", str(tmp_path / "a.so")]
    digest = inputs_digest(words, str(tmp_path))
    assert inputs_digest(list(words), str(tmp_path)) == digest
    (tmp_path / "a.so").write_bytes(b"an older library")
    assert inputs_digest(words, str(tmp_path)) == digest, "the output is not an input"
    second.write_bytes(b"\x7fELF three")
    assert inputs_digest(words, str(tmp_path)) != digest
