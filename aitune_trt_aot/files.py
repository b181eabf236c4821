"""Writing files so that a failed or interrupted write never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary path beside ``path``, then rename it to ``path``.

    The temporary name keeps ``path``'s suffix (some writers choose the format by it). On any error
    the temporary file or folder is removed and ``path`` keeps its previous content, if any.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.unlink()  # writers create the file themselves; some refuse to overwrite
    try:
        write(tmp)
        if not tmp.exists():
            raise RuntimeError(f"Writing {path} produced no file.")
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as ``sha256:<hex>`` (recorded at save, checked at load)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def bytes_digest(data: bytes) -> str:
    """SHA-256 of ``data`` in :func:`file_digest`'s form: what a file holding exactly these bytes hashes to."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
