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

from aitune_trt_aot.pt2.object_reuse import STAMP_SUFFIX, inputs_digest, object_target, reused_objects


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
    """The same model again reuses its wrapper's object; a model of other weights (other code here) compiles.

    On the CPU Inductor folds the model's small constants into the kernel code, so other weights are other code;
    for a graph of TensorRT engines the weights stay in the engines. Both packages compute their own model.
    """
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    first, second = _model(0), _model(1)
    assert _package(first, tmp_path / "first.pt2") == [], "nothing compiled before: nothing reused"
    reused = _package(first, tmp_path / "again.pt2")
    assert any(name.endswith("wrapper.o") for name in reused), reused
    assert not any(name.endswith("weights.o") for name in reused), "the constants' assembly always compiles"
    assert list((tmp_path / "inductor").rglob(f"*wrapper.o{STAMP_SUFFIX}")), "stamps sit beside the objects"
    assert not any(name.endswith("kernel.o") for name in _package(second, tmp_path / "second.pt2"))
    x = torch.randn(7, 16)
    with torch.no_grad():
        for name, model in (("first", first), ("again", first), ("second", second)):
            loaded = torch._inductor.aoti_load_package(str(tmp_path / f"{name}.pt2"))
            assert torch.allclose(loaded(x), model(x), atol=1e-5), name
        assert not torch.allclose(second(x), first(x), atol=1e-3)


def test_only_compile_only_commands_writing_objects_are_candidates() -> None:
    """Links and precompiled headers always run; a compile-only command names its object."""
    assert object_target(["g++", "a.cpp", "-c", "-o", "/c/a.o"]) == Path("/c/a.o")
    assert object_target(["g++", "a.o", "b.o", "-shared", "-o", "/c/a.so"]) is None
    assert object_target(["g++", "-x", "c++-header", "h.h", "-c", "-o", "/c/h.h.gch"]) is None
    assert object_target(["g++", "a.cpp", "-c"]) is None
    assert object_target(["g++", "w.weights.S", "-c", "-o", "/c/w.weights.o"]) is None, "data the digest cannot see"


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
