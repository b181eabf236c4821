"""``save_pt2``: write what AITune tuned with this backend to a standalone ``.pt2`` package for deployment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from aitune_trt_aot import hints
from aitune_trt_aot.backend import TorchTensorRTAotBackend
from aitune_trt_aot.errors import Pt2ExportError
from aitune_trt_aot.files import write_atomically
from aitune_trt_aot.formats.aot_inductor import AotInductorFormat
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
    if len(graphs) > 1:
        listed = "; ".join(f"{where}: {backend.describe()}" for where, backend in graphs)
        raise Pt2ExportError(
            f"This model was tuned into {len(graphs)} graphs ({listed}). A .pt2 written here holds one graph: "
            "TensorRT engines of several AOTInductor models would share one constants folder in the package "
            "and overwrite each other. Save each graph's backend to its own file "
            "(aitune_trt_aot.save_pt2(backend, path)), or tune the model so that it forms one graph."
        )
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
    fmt = backend.artifact_format
    if fmt != AotInductorFormat.name:
        raise Pt2ExportError(
            f"{backend.describe()} holds a {fmt!r} artifact, not a .pt2 package. {hints.for_pt2_export()}"
        )
    path = Path(path)
    if path.suffix != ".pt2":
        raise Pt2ExportError(f"{path}: a package file name must end in .pt2 (the AOTInductor loaders require it).")
    write_atomically(path, lambda tmp: shutil.copyfile(source, tmp))
    return path
