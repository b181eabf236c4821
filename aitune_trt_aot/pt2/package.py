"""What a ``.pt2`` package records, read from its archive without loading anything.

AOTInductor keeps a package's ``aot_inductor.metadata`` (where this backend records the input ranges, built-in
values, coverage, build environment and kernel specialization) in
``<root>/data/aotinductor/<model>/<hash>.wrapper_metadata.json``. This module reads it, checks the archive's entries
against their CRC32 (the C++ loader does not), and compares what the package was built for with this machine
(``pt2.installed``).
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import torch

from aitune_trt_aot.compat import PT2_MUST_MATCH, mismatch
from aitune_trt_aot.engine_runtime import KERNEL_SPECIALIZATIONS
from aitune_trt_aot.errors import Pt2LoadError
from aitune_trt_aot.files import archive_damage
from aitune_trt_aot.pt2.installed import installed_environment
from aitune_trt_aot.ranges import InputRange

logger = logging.getLogger(__name__)

INPUTS_METADATA_KEY = "aitune_trt_aot.inputs"
COVERAGE_METADATA_KEY = "aitune_trt_aot.coverage"
BUILT_FOR_METADATA_KEY = "aitune_trt_aot.built_for"
CONSTANTS_METADATA_KEY = "aitune_trt_aot.constants"
KERNELS_METADATA_KEY = "aitune_trt_aot.kernel_specialization"  # the config's choice (engine_runtime), "auto" if absent
DEFAULT_MODEL_NAME = "model"
# AOTInductor writes the `aot_inductor.metadata` config to <root>/data/aotinductor/<model>/<hash>.wrapper_metadata.json
# (a copy goes to <hash>.kernel_metadata.json); the C++ loader finds it by this suffix.
METADATA_SUFFIX = "wrapper_metadata.json"


def input_ranges_from_metadata(text: str) -> list[InputRange]:
    """The ranges a package records under ``INPUTS_METADATA_KEY`` (JSON), named by position: ``tensor 0``, ..."""
    return [InputRange.from_json(data, f"tensor {index}") for index, data in enumerate(json.loads(text))]


def model_names(path: Path) -> list[str]:
    """Names of the models in a package (archive entries ``<archive>/data/aotinductor/<model>/...``)."""
    with zipfile.ZipFile(path) as archive:
        parts = [entry.split("/") for entry in archive.namelist()]
    return sorted({p[p.index("aotinductor") + 1] for p in parts if "aotinductor" in p[:-2]})


def check_intact(path: Path) -> None:
    """Raise :class:`Pt2LoadError` unless every entry of the archive reads back with its stored CRC32."""
    damage = archive_damage(path)
    if damage is not None:
        entry, why = damage
        raise Pt2LoadError(
            f"{path} is damaged or incomplete: its entry {entry} does not read back intact ({why}). Write it again "
            "with aitune_trt_aot.save_pt2, or restore a good copy."
        )


def package_metadata(path: Path, model_name: str | None = DEFAULT_MODEL_NAME) -> dict[str, str]:
    """The metadata AOTInductor stored for ``model_name`` (``aot_inductor.metadata`` and its device keys).

    Read from the archive without loading anything: ``<root>/data/aotinductor/<model>/<hash>.wrapper_metadata.json``,
    the file ``AOTIModelPackageLoader`` reads. ``model_name`` None takes the first model's. Empty when the
    package has none for that model.
    """
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if (
                parts[-4:-2] == ["data", "aotinductor"]
                and model_name in (None, parts[-2])
                and parts[-1].endswith(METADATA_SUFFIX)
            ):
                try:
                    metadata = json.loads(archive.read(name))
                except ValueError:
                    metadata = None
                if not isinstance(metadata, dict):
                    raise Pt2LoadError(f"{path} is damaged: its metadata {name} is not a JSON object.")
                return {str(key): str(value) for key, value in metadata.items()}
    return {}


def recorded_environment(metadata: dict[str, str]) -> dict[str, Any] | None:
    """What a package's metadata says it was built for (``compat.build_environment``), None if it says nothing."""
    try:
        recorded = json.loads(metadata.get(BUILT_FOR_METADATA_KEY) or "null")
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) else None


def check_built_for(path: Path, metadata: dict[str, str], device: torch.device) -> None:
    """Raise :class:`Pt2LoadError` if ``metadata`` records a build for another GPU architecture or stack than this one.

    Facts unknown on either side (no record, no GPU here) are not compared (``compat.mismatch``).
    """
    recorded = recorded_environment(metadata)
    if not recorded:
        return
    here = installed_environment(device if device.type == "cuda" and torch.cuda.is_available() else None)
    problem = mismatch(recorded, here, PT2_MUST_MATCH)
    if problem is not None:
        raise Pt2LoadError(
            f"Cannot run {path}: {problem}. Its TensorRT engines and compiled code run only on the GPU architecture "
            "and the torch, TensorRT and Torch-TensorRT releases they were built with: re-tune and re-export it on "
            "this machine (aitune_trt_aot.save_pt2), or run it on a machine like the one it was built on."
        )


def recorded_kernel_specialization(metadata: dict[str, str], path: Path) -> str:
    """The ``kernel_specialization`` a package records (``"auto"`` where it records none, or one unknown here)."""
    choice = metadata.get(KERNELS_METADATA_KEY, "auto")
    if choice not in KERNEL_SPECIALIZATIONS:
        logger.warning("%s records kernel_specialization=%r, unknown here; using 'auto'.", path, choice)
        return "auto"
    return choice
