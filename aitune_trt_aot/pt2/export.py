"""``save_pt2``: write what AITune tuned with this backend to a standalone ``.pt2`` package for deployment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from aitune_trt_aot.backend import TorchTensorRTAotBackend
from aitune_trt_aot.errors import Pt2ExportError
from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.plan import check_pt2_export, check_pt2_graphs
from aitune_trt_aot.tuned import tuned_graphs


def _backend_to_export(target: Any) -> TorchTensorRTAotBackend:
    if isinstance(target, TorchTensorRTAotBackend):
        return target
    graphs = tuned_graphs(target, Pt2ExportError)
    if not graphs:
        raise Pt2ExportError(
            f"Found no AITune module in the {type(target).__name__} given: pass the ait.Module (or a model holding "
            "one) after ait.tune / ait.load, or a TorchTensorRTAotBackend."
        )
    check_pt2_graphs([f"{where}: {backend.describe()}" for where, backend in graphs])
    where, backend = graphs[0]
    if not isinstance(backend, TorchTensorRTAotBackend):
        raise Pt2ExportError(
            f"{where} runs on {backend.describe()}, not on aitune_trt_aot's TorchTensorRTAotBackend, so there is no "
            "TensorRT .pt2 to write. Tune it with TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig("
            "output_format='aot_inductor'))."
        )
    return backend


def save_pt2(target: Any, path: str | os.PathLike[str]) -> Path:
    """Write the ``.pt2`` AOTInductor package of a tuned model (or of one backend) to ``path``.

    The package runs without AITune: :func:`aitune_trt_aot.pt2.runtime.load_pt2` in Python,
    ``torch::inductor::AOTIModelPackageLoader`` in C++ (``examples/cpp``).

    Args:
        target: An AITune module after ``ait.tune`` or ``ait.load``, a model holding one, or a
            :class:`TorchTensorRTAotBackend`. It must come down to ONE graph built with
            ``output_format="aot_inductor"``; several graphs raise :class:`Pt2ExportError` (nothing is lost silently).
        path: Where to write the package; it should end in ``.pt2``.

    Returns:
        The path written.

    """
    backend = _backend_to_export(target)
    source = backend.artifact_path
    if source is None:
        raise Pt2ExportError(f"{backend.describe()} has not been built or loaded yet: run ait.tune or ait.load first.")
    path = Path(path)
    check_pt2_export(backend.describe(), str(backend.artifact_format), path)
    write_atomically(path, lambda tmp: shutil.copyfile(source, tmp))
    return path
