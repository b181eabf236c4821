"""Writing files so that a failed or interrupted write never leaves a half-written file behind; checking zip archives.

Imports nothing from AITune or Torch-TensorRT: the ``.pt2`` runtime uses it too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

_CRC_CHUNK = 1 << 20


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


def damaged_entry(archive: zipfile.ZipFile) -> tuple[str, str] | None:
    """``(name, why)`` of the first entry whose bytes fail their CRC32 or cannot be read back, None if all pass.

    Reads every entry once: about as long as reading the file. (``ZipFile.testzip`` does the same but raises
    for some kinds of damage and does not say what it found.)
    """
    for entry in archive.infolist():
        try:
            with archive.open(entry) as data:  # zipfile raises BadZipFile at the end of an entry whose CRC differs
                while data.read(_CRC_CHUNK):
                    pass
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
            return entry.filename, f"{type(error).__name__}: {error}"
    return None


def archive_damage(path: Path) -> tuple[str, str] | None:
    """:func:`damaged_entry` of the zip archive at ``path``; a directory that cannot be read is named as the entry."""
    try:
        with zipfile.ZipFile(path) as archive:
            return damaged_entry(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return "(the archive's directory)", f"{type(error).__name__}: {error}"
