"""Fresh-process check: engine calls whose kernel compile cannot get host memory end in ``EngineCallError``.

Usage: python -m tests.scripts.call_under_rlimit CASE CHECKPOINT EXPECTED.pt LIMIT MARGIN_MB

Loads the checkpoint (built with warm-up off and no CUDA graphs, so that each new batch size makes TensorRT-RTX
compile kernels at the call), makes one call at batch size 1, then caps the process at its current use plus
``MARGIN_MB``: ``LIMIT`` ``data`` caps its heap (``RLIMIT_DATA``: host allocations, not the GPU's), ``as`` its
whole address space (``RLIMIT_AS``: on an H100 that made CUDA's own allocations fail first, 2026-12-07). ``tmpdir``
caps nothing but points ``TMPDIR`` below a regular file, so that nothing can be created there: TensorRT-RTX 1.6
reads ``TMPDIR`` in its just-in-time compile path (NVRTC's automatic precompiled header, the compiled-kernel library
it may write out; strings of ``libtensorrt_rtx.so.1``). Then calls
at each batch size stored in ``EXPECTED.pt`` (none called before in this process). Prints one JSON line: per batch
size, ``"EngineCallError: ..."``, another exception's type and message, or the largest difference from eager (a
number: the call returned).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from collections.abc import Callable

import torch

# Before AITune: the package makes TensorRT-RTX importable as `tensorrt` (this checkout is not pip-installed here).
import aitune_trt_aot  # noqa: F401

# isort: split

import aitune.torch as ait
from aitune.torch.backend import TorchEagerBackend
from aitune.torch.utils.module import move_tensors_to_device

from aitune_trt_aot.errors import EngineCallError
from tests.support.gpu import inputs_for, strategy_for
from tests.support.models import build_model
from tests.support.processes import arguments

LIMITS = {"data": (resource.RLIMIT_DATA, "VmData:"), "as": (resource.RLIMIT_AS, "VmSize:")}


def _in_use_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _apply(limit: str, margin_mb: int) -> tuple[dict[str, object], Callable[[], None]]:
    """Apply the cap ``limit`` names; what was applied, and how to undo it."""
    if limit == "tmpdir":
        blocker = tempfile.NamedTemporaryFile(prefix="not-a-folder-", delete=False)
        before = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = os.path.join(blocker.name, "tmp")

        def undo() -> None:
            os.environ.pop("TMPDIR") if before is None else os.environ.__setitem__("TMPDIR", before)
            os.unlink(blocker.name)

        return {"tmpdir": os.environ["TMPDIR"]}, undo
    which, field = LIMITS[limit]
    soft, hard = resource.getrlimit(which)
    cap = _in_use_bytes(field) + margin_mb * (1 << 20)
    resource.setrlimit(which, (cap, hard))
    return {"cap_bytes": cap}, lambda: resource.setrlimit(which, (soft, hard))


def main() -> None:
    """Load, call once, apply what ``LIMIT`` names, call at each stored batch size; print the outcomes."""
    case, checkpoint, expected_path, limit, margin_mb = arguments(sys.argv)[:5]
    expected = torch.load(expected_path)
    loaded = ait.load(ait.Module(build_model(case), case, strategy=strategy_for(TorchEagerBackend())), checkpoint)
    device = torch.device("cuda")
    inputs = {batch: move_tensors_to_device((args, kwargs), device) for batch, (args, kwargs, _, _) in expected.items()}
    eager = {batch: entry[3].to(device) for batch, entry in expected.items()}
    first_args, first_kwargs = inputs_for(case, 1)
    with torch.no_grad():
        loaded(*first_args, **first_kwargs)  # the first call's one-time set-up happens before the cap
    torch.cuda.synchronize()
    outcomes: dict[str, object] = {}
    applied, undo = _apply(limit, int(margin_mb))
    try:
        for batch, (args, kwargs) in inputs.items():
            try:
                with torch.no_grad():
                    actual = loaded(*args, **kwargs)
                torch.cuda.synchronize()
                outcomes[str(batch)] = float((actual.float() - eager[batch].float()).abs().max())
            except EngineCallError as error:
                outcomes[str(batch)] = f"EngineCallError: {error}"
            except BaseException as error:  # what else a capped process gave: reported, the parent decides
                outcomes[str(batch)] = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        undo()
    print(json.dumps({"limit": limit, "margin_mb": int(margin_mb), **applied, "outcomes": outcomes}))


if __name__ == "__main__":
    main()
