"""Fresh-process check: ``import aitune.torch`` before anything else, then ``ait.load`` a checkpoint of this backend.

Usage: python -m tests.scripts.load_aitune_first --site=DIR [--no-import] --args-from-stdin, then CASE CHECKPOINT
       EXPECTED.pt as one JSON list on stdin (tests start it ahead: tests.support.processes.PrestartedPython)
DIR holds this project installed by pip (``tests.support.install.pip_install``). It is processed first, as
interpreter start-up processes site-packages (``site.addsitedir`` runs its ``.pth`` files: the start-up hook of
``aitune_trt_aot_tensorrt_alias``). Then ``aitune.torch`` is imported, before aitune_trt_aot and Torch-TensorRT.
Without ``--no-import`` the program imports aitune_trt_aot next, as a serving script written "AITune first" does;
with it, only the checkpoint's entries can bring the backend in. The rest is ``tests.scripts.load_and_run`` (load,
run, compare with the stored outputs); its JSON line also holds what the imports found.
"""

from __future__ import annotations

import importlib.util
import site
import sys


def _site_dir() -> str:
    """The ``--site=DIR`` flag's folder."""
    (folder,) = [arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--site=")]
    return folder


TENSORRT_BEFORE_HOOK = importlib.util.find_spec("tensorrt") is not None
site.addsitedir(_site_dir())

import aitune.torch  # noqa: E402, F401  (first: nothing of aitune_trt_aot or Torch-TensorRT is imported yet)

FACTS = {
    "tensorrt_found_before_hook": TENSORRT_BEFORE_HOOK,
    "tensorrt_module": sys.modules["tensorrt"].__name__,
    "hook_installed": any(type(finder).__name__ == "TensorRTAlias" for finder in sys.meta_path),
    "imported_by_aitune": sorted(name for name in ("aitune_trt_aot", "torch_tensorrt") if name in sys.modules),
}
if "--no-import" not in sys.argv:
    import aitune_trt_aot  # noqa: E402, F401

import tensorrt  # noqa: E402
from aitune.torch.backend.tensorrt.torch_output_allocator import TorchOutputAllocator  # noqa: E402

from tests.scripts import load_and_run  # noqa: E402  (imports torch_tensorrt, which swaps in its `tensorrt` proxy)


def _facts_before_load() -> dict:
    """The import facts, plus whether AITune's TensorRT classes are still Torch-TensorRT's after its import."""
    now = sys.modules["tensorrt"]
    return FACTS | {
        "same_tensorrt_classes": TorchOutputAllocator.__mro__[1] is now.IOutputAllocator is tensorrt.IOutputAllocator,
        "ours_imported_before_load": "aitune_trt_aot" in sys.modules,
    }


if __name__ == "__main__":
    load_and_run.main(_facts_before_load())
