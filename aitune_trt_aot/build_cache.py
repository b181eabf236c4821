"""The build cache: artifacts of finished builds, found again by a fingerprint of everything that shaped them.

A second ``ait.tune`` of an unchanged model reuses the artifact instead of exporting and compiling again. The
fingerprint covers the model (the source of every submodule's class, its ``extra_repr``, its mode, and the bytes
of every parameter and buffer), the build facts (config, shape ranges, precision, format) and the machine (GPU,
TensorRT and torch versions). A reused artifact is still loaded and compared with eager PyTorch, so a model
whose behaviour changed in a way the fingerprint cannot see (a helper function edited elsewhere) fails that
check; the entry is then dropped and the model built afresh.

Entries live in ``$AITUNE_TRT_AOT_CACHE_DIR`` (default ``$XDG_CACHE_HOME/aitune_trt_aot/builds``, i.e.
``~/.cache/aitune_trt_aot/builds``), one folder each; the ``$AITUNE_TRT_AOT_CACHE_ENTRIES`` (default 8) most
recently used are kept.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aitune_trt_aot.files import file_digest

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "AITUNE_TRT_AOT_CACHE_DIR"
CACHE_ENTRIES_ENV = "AITUNE_TRT_AOT_CACHE_ENTRIES"
DEFAULT_ENTRIES = 8
ENTRY_FILE = "entry.json"


def cache_root() -> Path:
    """The folder that holds the cache entries (``$AITUNE_TRT_AOT_CACHE_DIR`` or the user's cache folder)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aitune_trt_aot" / "builds"


def _max_entries() -> int:
    value = os.environ.get(CACHE_ENTRIES_ENV, str(DEFAULT_ENTRIES))
    try:
        return max(1, int(value))
    except ValueError:
        logger.warning(
            "%s=%r is not a whole number; keeping %d build cache entries.", CACHE_ENTRIES_ENV, value, DEFAULT_ENTRIES
        )
        return DEFAULT_ENTRIES


def _class_source(cls: type, forward: Any) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):  # classes made at run time, or without source files
        code = getattr(forward, "__code__", None)
        return "" if code is None else f"{code.co_code.hex()}{code.co_consts!r}"


def model_fingerprint(module: nn.Module) -> str:
    """SHA-256 of the module's code, structure, mode and weights: equal for a deep copy, different after any edit."""
    digest = hashlib.sha256()
    sources: dict[type, str] = {}
    for name, submodule in module.named_modules():
        cls = type(submodule)
        if cls not in sources:
            sources[cls] = _class_source(cls, getattr(cls, "forward", None))
        digest.update(
            f"{name}|{cls.__module__}.{cls.__qualname__}|{submodule.extra_repr()}|{submodule.training}\n".encode()
        )
        digest.update(sources[cls].encode())
    # Parameters and every buffer, the non-persistent ones too (state_dict leaves those out).
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel() and tensor.device.type != "meta":
            data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu()
            digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def build_fingerprint(module: nn.Module, facts: dict[str, Any]) -> str:
    """SHA-256 of the model fingerprint and the JSON of ``facts`` (config, ranges, precision, machine)."""
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(f"{model_fingerprint(module)}\n{text}".encode()).hexdigest()


@dataclass(frozen=True)
class CachedBuild:
    """One cache entry: its folder, its artifact file, the build facts stored beside it, and its kernel cache."""

    folder: Path
    artifact: Path
    facts: dict[str, Any]
    kernel_cache: Path | None = None  # checked against facts["kernel_cache_checksum"] when it is loaded


def lookup(fingerprint: str) -> CachedBuild | None:
    """The intact entry for ``fingerprint``, or None. A damaged entry is removed and counts as a miss."""
    folder = cache_root() / fingerprint
    if not folder.is_dir():
        return None
    try:
        facts = json.loads((folder / ENTRY_FILE).read_text())
        artifact = folder / facts["artifact_name"]
        if file_digest(artifact) != facts["checksum"]:
            raise ValueError(f"{artifact.name} does not match its recorded checksum")
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("Removing the damaged build cache entry %s (%s: %s).", folder, type(error).__name__, error)
        discard(folder)
        return None
    os.utime(folder)  # most recently used: kept longest
    kernel_cache = folder / facts["kernel_cache_name"] if facts.get("kernel_cache_name") else None
    return CachedBuild(folder=folder, artifact=artifact, facts=facts, kernel_cache=kernel_cache)


def store(fingerprint: str, artifact: Path, facts: dict[str, Any], kernel_cache: Path | None = None) -> Path | None:
    """Copy ``artifact``, its ``kernel_cache`` file (if any) and ``facts`` into the entry for ``fingerprint``.

    Returns the entry's folder, None if not stored. ``facts`` is ``CheckpointEntry.build_facts()``: JSON-safe,
    with the artifact's ``checksum``.

    The entry is assembled in a temporary folder beside the others and renamed into place, so a reader never
    sees half an entry. Failing to store (read-only or full disk) is logged, never raised: the build stands.
    """
    root = cache_root()
    folder = root / fingerprint
    staging: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{fingerprint[:16]}.", suffix=".tmp", dir=root))
        shutil.copyfile(artifact, staging / artifact.name)
        entry = {**facts, "artifact_name": artifact.name, "created": time.time()}
        if kernel_cache is not None:
            shutil.copyfile(kernel_cache, staging / kernel_cache.name)
            entry["kernel_cache_name"] = kernel_cache.name
        (staging / ENTRY_FILE).write_text(json.dumps(entry, default=str))
        if folder.exists():
            discard(folder)
        os.replace(staging, folder)
        staging = None
    except OSError as error:
        logger.warning("Could not store the build in the build cache %s (%s); the build itself is fine.", root, error)
        return None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    _evict(root, keep=folder)
    logger.info("Stored the build in the build cache: %s.", folder)
    return folder


def discard(folder: Path) -> None:
    """Remove one entry (a stale or damaged one)."""
    shutil.rmtree(folder, ignore_errors=True)


def _evict(root: Path, keep: Path) -> None:
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError as error:  # another process evicting at the same time
        logger.info("Build cache eviction skipped (%s).", error)
        return
    for old in entries[_max_entries() :]:
        if old != keep:
            discard(old)
