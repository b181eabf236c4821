"""Shared test set-up: the `gpu` marker, AITune isolation, and skipping GPU tests where they cannot run."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aitune_trt_aot  # noqa: F401  (makes `tensorrt` importable before aitune.torch)
from aitune_trt_aot.stack import torch_tensorrt_or_none


def _gpu_skip_reason() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    if torch_tensorrt_or_none() is None:
        return "needs Torch-TensorRT (torch_tensorrt does not import here)"
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported, so the gc.collect() in each MODULE_REGISTRY.clear() stays cheap."""
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu`-marked tests, with the reason, where CUDA or Torch-TensorRT is missing."""
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
    """Each test gets its own AITune cache folder and an empty module registry."""
    import aitune.torch as ait
    from aitune.torch.module_registry import MODULE_REGISTRY

    cache = tmp_path / "aitune-cache"
    monkeypatch.setenv("AITUNE_CACHE_DIR", str(cache))
    previous = ait.config.cache_dir
    ait.config.cache_dir = cache
    MODULE_REGISTRY.clear()
    yield
    MODULE_REGISTRY.clear()
    ait.config.cache_dir = previous


@pytest.fixture
def repo_root() -> Path:
    """The repository root (subprocess scripts import `tests.*` from there)."""
    return Path(__file__).resolve().parent.parent


def subprocess_env(repo_root: Path) -> dict[str, str]:
    """Environment for a fresh Python process that can import this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(repo_root)) if p)
    return env


def run_python(
    repo_root: Path, *args: str, cwd: Path | None = None, timeout: int = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in a fresh process that can import this checkout; capture its output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd or repo_root,
        env=env or subprocess_env(repo_root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
