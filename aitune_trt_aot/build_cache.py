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

Several processes and machines may share the folder (docs/distributed.md). An entry is assembled in a temporary
folder and published with one ``os.rename``; the first publisher of a fingerprint wins and an entry never changes
after that. Reads (:func:`lookup`, :func:`copy_out`) hold a reader's mark (``cache_readers``), and removal
(:func:`discard`, eviction) first renames the entry out of the way, then deletes it only where no process is
reading it. Who builds an entry, and who waits, is ``cache_lock``'s business.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aitune_trt_aot import holders
from aitune_trt_aot.cache_readers import live_readers, reading
from aitune_trt_aot.files import file_digest, write_atomically

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "AITUNE_TRT_AOT_CACHE_DIR"
CACHE_ENTRIES_ENV = "AITUNE_TRT_AOT_CACHE_ENTRIES"
DEFAULT_ENTRIES = 8
ENTRY_FILE = "entry.json"
_RETIRED = ".retired"  # suffix of entries renamed out of the way, to be deleted once nobody reads them


def cache_root() -> Path:
    """The folder that holds the cache entries (``$AITUNE_TRT_AOT_CACHE_DIR`` or the user's cache folder)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aitune_trt_aot" / "builds"


def _max_entries() -> int:
    return max(1, int(holders.env_number(CACHE_ENTRIES_ENV, DEFAULT_ENTRIES)))


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
    root = cache_root()
    folder = root / fingerprint
    if not folder.is_dir():
        return None
    with reading(root, fingerprint):
        try:
            facts = json.loads((folder / ENTRY_FILE).read_text())
            artifact = folder / facts["artifact_name"]
            if file_digest(artifact) != facts["checksum"]:
                raise ValueError(f"{artifact.name} does not match its recorded checksum")
            os.utime(folder)  # most recently used: kept longest
        except FileNotFoundError as error:
            if not folder.is_dir():  # removed by another process while being read: a miss, not damage
                return None
            problem: Exception | None = error
        except (OSError, ValueError, KeyError, TypeError) as error:
            problem = error
        else:
            problem = None
    if problem is not None:
        logger.warning("Removing the damaged build cache entry %s (%s: %s).", folder, type(problem).__name__, problem)
        discard(folder)
        return None
    kernel_cache = folder / facts["kernel_cache_name"] if facts.get("kernel_cache_name") else None
    return CachedBuild(folder=folder, artifact=artifact, facts=facts, kernel_cache=kernel_cache)


def copy_out(cached: CachedBuild, artifact: Path, kernel_cache: Path | None) -> None:
    """Copy the entry's artifact to ``artifact`` and its kernel cache to ``kernel_cache`` (each written atomically).

    Holds a reader's mark meanwhile, so that no other process deletes the entry mid-copy. Raises ``OSError`` where
    the entry was removed before the copy began.
    """
    with reading(cached.folder.parent, cached.folder.name):
        write_atomically(artifact, partial(shutil.copyfile, cached.artifact))
        if kernel_cache is not None and cached.kernel_cache is not None:
            write_atomically(kernel_cache, partial(shutil.copyfile, cached.kernel_cache))


def store(fingerprint: str, artifact: Path, facts: dict[str, Any], kernel_cache: Path | None = None) -> Path | None:
    """Copy ``artifact``, its ``kernel_cache`` file (if any) and ``facts`` into the entry for ``fingerprint``.

    Returns the entry's folder, None if not stored. ``facts`` is ``CheckpointEntry.build_facts()``: JSON-safe,
    with the artifact's ``checksum``; the entry adds who built it (``built_by``, a ``holders.Holder``).

    The entry is assembled in a temporary folder beside the others and renamed into place, so a reader never
    sees half an entry. Where another process published this fingerprint first, its entry stays and this copy is
    dropped. Failing to store (read-only or full disk) is logged, never raised: the build stands.
    """
    root = cache_root()
    folder = root / fingerprint
    staging: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{fingerprint[:16]}.", suffix=".tmp", dir=root))
        shutil.copyfile(artifact, staging / artifact.name)
        entry = {**facts, "artifact_name": artifact.name, "created": time.time(), "built_by": holders.me().to_json()}
        if kernel_cache is not None:
            shutil.copyfile(kernel_cache, staging / kernel_cache.name)
            entry["kernel_cache_name"] = kernel_cache.name
        (staging / ENTRY_FILE).write_text(json.dumps(entry, default=str))
        if not _publish(staging, folder):
            logger.info("The build cache already holds %s (published by another process); keeping that one.", folder)
            return folder
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


def _publish(staging: Path, folder: Path) -> bool:
    """Rename ``staging`` to ``folder`` unless an entry is there already; whether it was published."""
    try:
        os.rename(staging, folder)  # an existing entry (never empty) makes this fail: the first publisher wins
    except OSError as error:
        if folder.is_dir() and error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def discard(folder: Path) -> None:
    """Remove one entry (a stale or damaged one); deleted at once unless another process is reading it."""
    retired = _retire(folder)
    if retired is not None and not live_readers(folder.parent, folder.name):
        shutil.rmtree(retired, ignore_errors=True)


def _retire(folder: Path) -> Path | None:
    """Rename entry ``folder`` out of the way (no new reader finds it); the new path, None if it was gone."""
    retired = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}{_RETIRED}")
    try:
        os.rename(folder, retired)
    except FileNotFoundError:
        return None
    return retired


def _evict(root: Path, keep: Path) -> None:
    """Delete the least recently used entries beyond the limit, skipping those another process is reading."""
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError as error:  # another process evicting at the same time
        logger.info("Build cache eviction skipped (%s).", error)
        return
    for old in entries[_max_entries() :]:
        if old == keep or live_readers(root, old.name):
            continue
        retired = _retire(old)
        if retired is None:
            continue
        if live_readers(root, old.name):  # a reader came between the look and the rename: give the entry back
            try:
                os.rename(retired, old)
            except OSError:
                pass  # published again meanwhile: the retired copy goes with the sweep below
            continue
        shutil.rmtree(retired, ignore_errors=True)
    _sweep_retired(root)


def _sweep_retired(root: Path) -> None:
    """Delete retired entries that no process reads any more (left by a reader's mark at retirement)."""
    for retired in root.glob(f".*{_RETIRED}"):
        name = retired.name[1:].rsplit(".", 2)[0]
        if not live_readers(root, name):
            shutil.rmtree(retired, ignore_errors=True)
