"""Keep-kernels step: the kernels the self-check compiled, written beside the artifact so that loads skip them."""

from __future__ import annotations

import logging
from pathlib import Path

from aitune.torch.checkpoint.artifact import ArtifactPath

from aitune_trt_aot import engine_runtime
from aitune_trt_aot.checkpoint import CheckpointEntry

logger = logging.getLogger(__name__)


def keep_kernel_cache(entry: CheckpointEntry, setup: engine_runtime.EngineSetup | None, cache_dir: Path) -> None:
    """Write the engines' kernel cache (``setup``) to ``cache_dir`` and record it in ``entry``; nothing if empty.

    A failed write only costs first-call time on later loads: it is logged, and the entry keeps no kernel cache.
    """
    if setup is None:
        return
    data = engine_runtime.kernel_cache_bytes(setup.kernel_cache)
    if not data:
        return
    kernels = ArtifactPath(cache_dir, engine_runtime.KERNEL_CACHE_NAME)
    try:
        checksum = engine_runtime.write_kernel_cache(data, kernels.path)
    except OSError as error:
        logger.warning("Could not write the kernel cache %s (%s); loads will compile kernels.", kernels, error)
        return
    entry.kernel_cache = kernels
    entry.kernel_cache_checksum = checksum
