"""Damaging zip archives on purpose: what a flipped bit on disk or in transfer does to a checkpoint or package."""

from __future__ import annotations

import zipfile
from pathlib import Path

_LOCAL_HEADER_SIZE = 30  # a zip entry's fixed local header; its name and extra field follow


def flip_a_byte_inside(path: Path, entry: str) -> None:
    """Flip one bit in the middle of ``entry``'s stored bytes (not in any header): the zip still opens."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(entry)
    data = bytearray(path.read_bytes())
    start = info.header_offset
    header = _LOCAL_HEADER_SIZE + int.from_bytes(data[start + 26 : start + 28], "little")
    header += int.from_bytes(data[start + 28 : start + 30], "little")
    data[start + header + info.compress_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
