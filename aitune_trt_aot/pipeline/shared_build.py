"""Shared-build step: reuse a cached build, wait for the process building it, or claim the build for this one.

Every process that tunes the same model against one build cache folder (ranks under ``torchrun``, machines of one
kind sharing a folder) computes the same fingerprint. :func:`reuse_or_claim` finds the published entry and reuses it
(``cache_reuse.reuse_cached_build``: copied, loaded and checked on this process's device), or takes the entry's build
lock (``cache_lock``) and lets this process build, or waits for the process holding the lock and then reuses what it
published. :func:`building` holds the claim around the build: on success the build is stored (by the build) before
the lock is released; on failure the error is recorded for the waiting processes, which raise it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from torch import nn

from aitune_trt_aot import build_cache, cache_lock
from aitune_trt_aot.cache_lock import BuildLock
from aitune_trt_aot.pipeline.cache_reuse import fingerprint, reuse_cached_build
from aitune_trt_aot.pipeline.job import Build, BuildJob, StepTracker
from aitune_trt_aot.pipeline.job import TorchTensorRTAotBuildStep as Step
from aitune_trt_aot.plan import BuildPlan
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.toolkit import Toolkit

logger = logging.getLogger(__name__)

_REUSE_ATTEMPTS = 3  # entries failing their check on this process are dropped; after this many, build unlocked


@dataclass(frozen=True)
class Claim:
    """The right to build entry ``key`` and store it, held through ``lock`` (None: build and store unlocked)."""

    key: str
    lock: BuildLock | None


def reuse_or_claim(
    job: BuildJob, module: nn.Module, plan: BuildPlan, guard: ShapeGuard, toolkit: Toolkit, track: StepTracker
) -> tuple[Build | None, Claim | None]:
    """A build reused from the cache, or the claim under which this process builds (None: no cache for this model).

    Raises ``BuildError`` where the build this process waited for failed, or did not finish in time.
    """
    root = build_cache.cache_root()
    key = None
    for _ in range(_REUSE_ATTEMPTS):
        with track(Step.CACHE_LOOKUP) as result:
            key = key or fingerprint(job, module, plan, guard)
            if key is None:
                result["cache_hit"] = False
                return None, None
            try:
                turn = cache_lock.take_turn(root, key, partial(build_cache.lookup, key))
            except OSError as error:  # a cache folder that cannot be written: build here, as without sharing
                logger.warning("Build cache %s not usable for sharing builds (%s); building here.", root, error)
                result["cache_hit"] = False
                return None, Claim(key, None)
            result["cache_hit"] = turn.found is not None
            result["waited_seconds"] = round(turn.waited, 3)
        if turn.lock is not None:
            who = turn.lock.holder.describe()
            logger.info("%s: building %s; other processes that need it wait and reuse it.", who, key[:16])
            return None, Claim(key, turn.lock)
        reused = reuse_cached_build(turn.found, job, module, plan, guard, toolkit, track)
        if reused is not None:
            return reused, None
    logger.warning(
        "The build cache entry %s failed its check %d times here; building without the lock.", key, _REUSE_ATTEMPTS
    )
    return None, Claim(key, None)


@contextmanager
def building(claim: Claim | None) -> Iterator[None]:
    """Hold ``claim`` while this process builds: release it after, recording the error for waiters on a failure."""
    if claim is None or claim.lock is None:
        yield
        return
    try:
        yield
    except BaseException as error:
        claim.lock.fail(error)
        raise
    claim.lock.release()
