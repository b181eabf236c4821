"""``python -m aitune_trt_aot inspect PATH``: what a ``.ait`` or ``.pt2`` file holds, and whether it runs here.

Prints the backends and artifact formats inside, TensorRT engines and coverage, input names with shape ranges
and dtypes, precision, what it was built for and whether this machine matches, and sizes. Exits 1 with a
one-line reason for a missing or damaged file. A ``.ait`` is read with ``torch.load(weights_only=False)``: inspect
only files you trust.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aitune_trt_aot.errors import ArtifactError

STATE_DICT_FILE = "state_dict.pt"  # AITune's checkpoint layout: a zip with this file and the artifacts


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    if not path.is_file():
        raise ArtifactError(f"No {what} at {path}.")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path} is not a complete {what} (not a readable zip archive): damaged or cut short.")
    return zipfile.ZipFile(path)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.1f} MiB" if num_bytes >= 2**20 else f"{num_bytes / 1024:.1f} KiB"


def _compatibility(built_for: dict[str, Any] | None) -> str:
    from aitune_trt_aot.compat import describe_environment, incompatibility

    if not built_for:
        return "built for: not recorded"
    problem = incompatibility(built_for)
    verdict = "this machine matches (or cannot tell)" if problem is None else f"CANNOT RUN HERE: {problem}"
    return f"built for: {describe_environment(built_for)}; {verdict}"


def _backend_entries(state: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(module name, entry)`` for every backend entry of every tuned module in an AITune state dict."""
    if isinstance(state, dict):
        tuned = state.get("tuned_module")
        if isinstance(tuned, dict) and isinstance(tuned.get("backends"), list):
            for pair in tuned["backends"]:
                if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[1], dict):
                    yield str(state.get("name", "?")), pair[1]
        for value in state.values():
            yield from _backend_entries(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from _backend_entries(value)


def _describe_ours(entry: dict[str, Any], archive: zipfile.ZipFile) -> list[str]:
    from aitune_trt_aot.checkpoint import CheckpointEntry

    parsed = CheckpointEntry.from_dict(entry)
    relative = str(parsed.artifact.relative_path)
    sizes = {info.filename: info.file_size for info in archive.infolist()}
    size = _size(sizes[relative]) if relative in sizes else "absent from the archive"
    lines = [
        f"    artifact: {relative} ({parsed.artifact_format}, {size})",
        f"    precision: {parsed.precision}; config: {parsed.config.describe() or 'defaults'}",
        f"    TensorRT: {parsed.coverage.describe() if parsed.coverage else 'coverage not recorded'}",
    ]
    if parsed.shape_guard is not None:
        for r in parsed.shape_guard.ranges:
            lines.append(f"    input {r.name}: {r.describe()}")
        if parsed.shape_guard.constants:
            lines.append(f"    built-in values: {parsed.shape_guard.constants}")
    if parsed.warm_calls:
        shapes = "; ".join(f"{call.shapes()} ({call.seconds} s at build)" for call in parsed.warm_calls)
        lines.append(f"    warm-up shapes: {shapes}; warm_up={parsed.config.warm_up!r}")
    lines.append(f"    {_compatibility(parsed.built_for)}")
    return lines


def inspect_ait(path: Path) -> list[str]:
    """Report lines for a ``.ait`` checkpoint."""
    import torch

    import aitune_trt_aot  # noqa: F401  (our entries' markers import it anyway; aitune needs `tensorrt`)

    with _open_zip(path, ".ait checkpoint") as archive:
        if STATE_DICT_FILE not in archive.namelist():
            raise ArtifactError(f"{path} has no {STATE_DICT_FILE}: it is not an AITune checkpoint, or it is damaged.")
        try:
            state = torch.load(io.BytesIO(archive.read(STATE_DICT_FILE)), weights_only=False, map_location="cpu")
        except Exception as error:
            raise ArtifactError(
                f"{path}: its {STATE_DICT_FILE} cannot be read ({type(error).__name__}: {error})."
            ) from error
        lines = [f"{path}: AITune checkpoint, {_size(path.stat().st_size)}"]
        for module, entry in _backend_entries(state):
            kind = entry.get("type", "?")
            lines.append(f"  module {module!r}: {kind}")
            if kind == "TorchTensorRTAotBackend":
                lines.extend(_describe_ours(entry, archive))
    return lines


def inspect_pt2(path: Path) -> list[str]:
    """Report lines for a ``.pt2`` package (its metadata only: no GPU, no library is loaded)."""
    from aitune_trt_aot.pt2.package import (
        CONSTANTS_METADATA_KEY,
        COVERAGE_METADATA_KEY,
        INPUTS_METADATA_KEY,
        KERNELS_METADATA_KEY,
        input_ranges_from_metadata,
        package_metadata,
        recorded_environment,
    )

    with _open_zip(path, ".pt2 package") as archive:
        engines = sum(1 for n in archive.namelist() if "/constants/custom_obj_" in n)
    metadata = package_metadata(path, model_name=None)
    if not metadata:
        raise ArtifactError(f"{path} has no AOTInductor model metadata: it is not a .pt2 package, or it is damaged.")
    lines = [f"{path}: .pt2 AOTInductor package, {_size(path.stat().st_size)}, {engines} embedded engine object(s)"]
    coverage = metadata.get(COVERAGE_METADATA_KEY)
    if coverage:
        from aitune_trt_aot.compiled import Coverage

        lines.append(f"  TensorRT: {Coverage(**json.loads(coverage)).describe()}")
    for spec in input_ranges_from_metadata(metadata.get(INPUTS_METADATA_KEY, "[]")):
        lines.append(f"  input {spec.name}: {spec.describe()}")
    constants = json.loads(metadata.get(CONSTANTS_METADATA_KEY, "{}"))
    if constants:
        lines.append(f"  built-in values: {constants}")
    if KERNELS_METADATA_KEY in metadata:
        lines.append(f"  kernel specialization: {metadata[KERNELS_METADATA_KEY]} (load_pt2 applies it)")
    capability = metadata.get("AOTI_COMPUTE_CAPABILITY") or "?"
    lines.append(f"  compiled for compute capability {capability}, device {metadata.get('AOTI_DEVICE_KEY', '?')}")
    lines.append(f"  {_compatibility(recorded_environment(metadata))}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m aitune_trt_aot inspect PATH``: print what the file holds; exit 1 on a missing or damaged file."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aitune_trt_aot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="describe a .ait checkpoint or a .pt2 package")
    inspect.add_argument("path", type=Path)
    options = parser.parse_args(argv)
    path: Path = options.path
    try:
        lines = inspect_pt2(path) if path.suffix == ".pt2" else inspect_ait(path)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
