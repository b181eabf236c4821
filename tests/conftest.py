"""Shared test set-up: skipping GPU tests where they cannot run, and AITune isolation. Helpers live in tests/support."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Import aitune_trt_aot (it makes ``tensorrt`` importable before any test imports aitune.torch).

    Not in the pytest-xdist controller, which runs no test: importing the stack there (~20 s on the GPU host)
    would only delay the workers' start.
    """
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import aitune_trt_aot  # noqa: F401


def _gpu_skip_reason() -> str | None:
    import torch

    from aitune_trt_aot.stack import torch_tensorrt_or_none

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    if torch_tensorrt_or_none() is None:
        return "needs Torch-TensorRT (torch_tensorrt does not import here)"
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported, so the gc.collect() in each MODULE_REGISTRY.clear() stays cheap."""
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/gpu as `gpu`; skip those tests, with the reason, without CUDA or Torch-TensorRT."""
    for item in items:
        if "/tests/gpu/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
    if not any("gpu" in item.keywords for item in items):
        return
    reason = _gpu_skip_reason()
    if reason is None:
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def isolated_aitune(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own AITune cache folder, its own build cache and an empty module registry."""
    import aitune.torch as ait
    from aitune.torch.module_registry import MODULE_REGISTRY

    cache = tmp_path / "aitune-cache"
    monkeypatch.setenv("AITUNE_CACHE_DIR", str(cache))
    # Each test builds for real: no build cache entry of another test (or of an earlier run) is reused.
    monkeypatch.setenv("AITUNE_TRT_AOT_CACHE_DIR", str(tmp_path / "build-cache"))
    previous = ait.config.cache_dir
    ait.config.cache_dir = cache
    MODULE_REGISTRY.clear()
    yield
    MODULE_REGISTRY.clear()
    ait.config.cache_dir = previous


@pytest.fixture
def fresh_process(tmp_path: Path):
    """A fresh Python process for ``reload_in_fresh_process``, started before the test tunes (it imports meanwhile)."""
    from tests.support.gpu import fresh_loader

    with fresh_loader(tmp_path) as process:
        yield process
