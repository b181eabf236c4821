"""Keeping Python's cyclic garbage collector off the objects that importing the stack creates.

AITune calls ``gc.collect()`` around every build, activation and deployment (``release_transient_memory``,
``cleanup_memory``, ``ModuleRegistry.clear``). Each call walks every tracked object of the process, and importing
torch, Torch-TensorRT and AITune leaves several hundred thousand of them: 0.3 s a call on the CPU machine
(690,000 objects), and 4 calls took 2.4 s of one `.pt2` tune on the GPU host (cProfile). None of those objects ever
becomes garbage. ``gc.freeze()`` after the imports moves them out of the collector's reach, so each later call
walks only what was made since (0.0 s on the CPU machine).

The cost: a cycle of objects that existed at import time is not collected before the process exits if it becomes
garbage later. Set ``AITUNE_TRT_AOT_GC_FREEZE=0`` to leave the collector alone, or call ``gc.unfreeze()``.

The objects are unfrozen again at exit (``atexit``). Interpreter shutdown collects only what is not frozen: with
the stack's objects still frozen, processes that had loaded a checkpoint on the GPU host ran to the end and then
died at shutdown with a non-zero exit status (2026-11-29, every fresh-process reload of the GPU suite).
"""

from __future__ import annotations

import atexit
import gc
import os

GC_FREEZE_ENV = "AITUNE_TRT_AOT_GC_FREEZE"


def freeze_import_time_objects() -> bool:
    """Collect once, then freeze what is left (unless ``AITUNE_TRT_AOT_GC_FREEZE=0``); True when it froze."""
    if os.environ.get(GC_FREEZE_ENV, "1").strip() == "0":
        return False
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)
    return True
