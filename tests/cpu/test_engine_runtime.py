"""CPU: which kernel specialization strategy a config gets, and writing the kernel cache file."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitune_trt_aot import engine_runtime
from aitune_trt_aot.files import file_digest


@pytest.mark.parametrize(
    ("choice", "captured", "strategy"),
    [
        ("auto", True, "eager"),  # a CUDA graph keeps the kernels it captured: specialise before capturing
        ("auto", False, "lazy"),  # TensorRT-RTX's default
        ("none", True, "none"),
        ("eager", False, "eager"),
        ("lazy", False, "lazy"),
    ],
)
def test_kernel_strategy(choice: str, captured: bool, strategy: str) -> None:
    assert engine_runtime.kernel_strategy(choice, captured) == strategy


def test_kernel_cache_file_is_written_whole_with_its_checksum(tmp_path: Path) -> None:
    """The bytes land under the final name only when complete; the returned checksum is the file's."""
    path = tmp_path / "run" / engine_runtime.KERNEL_CACHE_NAME
    checksum = engine_runtime.write_kernel_cache(b"kernels" * 100, path)
    assert path.read_bytes() == b"kernels" * 100
    assert checksum == file_digest(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
