"""The backend's entry in an AITune ``.ait`` checkpoint, and reading entries AITune's built-in backend wrote.

AITune resolves a checkpoint entry to a class by its ``"type"`` name among the direct subclasses of
``Backend`` that exist when the checkpoint is read. Our entries carry a :class:`CheckpointWriter`
object; unpickling it imports ``aitune_trt_aot``, which registers this package's backend before
AITune looks the name up. So ``ait.load`` picks this backend for checkpoints it wrote even where the
user did not import the package, and fails with "No module named 'aitune_trt_aot'" where it is not
installed, instead of handing the entry to the built-in class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from aitune.torch.checkpoint.artifact import ArtifactPath

from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
from aitune_trt_aot.errors import ArtifactError
from aitune_trt_aot.shapes import ShapeGuard
from aitune_trt_aot.warm_up import WarmCall

# 5: INT8/FP8 builds (config.quantization, coverage.layers), config.warm_up and the self-check's calls to warm up
#    at load (older readers would refuse the new fields); 4 still read.
# 4: exported_program engines stored raw for formats.raw_engines.rebuild_engine (older readers cannot import it).
# 3: the kernel cache and config.kernel_specialization (older readers would refuse the new config field).
# 2: Torch-TensorRT 2.14 formats, coverage, checksum and build facts; still read (no kernel cache).
# 1 (aitune-trt-aot 0.1, torch 2.11 stack) stored Python-runtime modules that Torch-TensorRT 2.14 cannot load.
FORMAT_VERSION = 5
OLDEST_READABLE_VERSION = 2


@dataclass(frozen=True)
class CheckpointWriter:
    """Marks a checkpoint entry as written by this package, in format ``version``."""

    package: str = "aitune_trt_aot"
    version: int = FORMAT_VERSION


@dataclass
class CheckpointEntry:
    """Everything the backend needs to run again from a checkpoint (its entry in the ``.ait`` file).

    Attributes:
        config: The config the engines were built with.
        artifact: The compiled model file.
        artifact_format: Name of the format of that file (see ``aitune_trt_aot.formats``).
        device: The device the engines were built on.
        shape_guard: Input ranges to check calls against, None when unknown (built-in checkpoints).
        precision: How the precision was obtained (``fp32``, ``autocast(float16)``, ...).
        coverage: TensorRT engines and operations in TensorRT vs PyTorch (None when unknown).
        checksum: ``sha256:<hex>`` of the artifact file at save (None when unknown: built-in checkpoints).
        built_for: GPU, TensorRT flavour and versions the engines were built with (``compat.build_environment``).
        kernel_cache: TensorRT-RTX's compiled kernels for the engines (``engine_runtime``), None when not kept.
        kernel_cache_checksum: ``sha256:<hex>`` of that file.
        warm_calls: The self-check's calls, without their data, that activations warm the engines with
            (``warm_up``); empty when none were recorded (older checkpoints, AITune's built-in backend).

    """

    config: TorchTensorRTAotBackendConfig
    artifact: ArtifactPath
    artifact_format: str
    device: torch.device | None
    shape_guard: ShapeGuard | None
    precision: str
    coverage: Coverage | None = None
    checksum: str | None = None
    built_for: dict[str, Any] | None = None
    kernel_cache: ArtifactPath | None = None
    kernel_cache_checksum: str | None = None
    warm_calls: list[WarmCall] = field(default_factory=list)

    def to_dict(self, type_name: str) -> dict[str, Any]:
        """The checkpoint entry (``type_name`` is the backend class name AITune looks up)."""
        return {
            "type": type_name,
            "writer": CheckpointWriter(),
            "config": self.config.to_dict(),
            "artifact": self.artifact,
            "kernel_cache": self.kernel_cache,
            "device": self.device,
            "shape_guard": None if self.shape_guard is None else self.shape_guard.to_dict(),
            **self.build_facts(),
        }

    def build_facts(self) -> dict[str, Any]:
        """What the build found out besides the file (format, precision, coverage, checksum, built_for, warm calls).

        JSON-safe. Stored in the checkpoint entry and in the build cache (``aitune_trt_aot.build_cache``).
        """
        return {
            "artifact_format": self.artifact_format,
            "precision": self.precision,
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "checksum": self.checksum,
            "built_for": self.built_for,
            "kernel_cache_checksum": self.kernel_cache_checksum,
            "warm_calls": [call.to_dict() for call in self.warm_calls],
        }

    @classmethod
    def from_build_facts(
        cls,
        facts: dict[str, Any],
        *,
        config: TorchTensorRTAotBackendConfig,
        artifact: ArtifactPath,
        device: torch.device | None,
        shape_guard: ShapeGuard | None,
        kernel_cache: ArtifactPath | None = None,
    ) -> CheckpointEntry:
        """An entry for ``artifact`` from :meth:`build_facts` output (missing facts: unknown)."""
        coverage = facts.get("coverage")
        return cls(
            config=config,
            artifact=artifact,
            artifact_format=facts["artifact_format"],
            device=device,
            shape_guard=shape_guard,
            precision=facts.get("precision", "unknown"),
            coverage=None if coverage is None else Coverage(**coverage),
            checksum=facts.get("checksum"),
            built_for=facts.get("built_for"),
            kernel_cache=kernel_cache,
            kernel_cache_checksum=facts.get("kernel_cache_checksum") if kernel_cache is not None else None,
            warm_calls=_warm_calls(facts.get("warm_calls") or []),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointEntry:
        """Read an entry written by this package or by AITune's built-in ``TorchTensorRTAotBackend``."""
        writer = data.get("writer")
        if isinstance(writer, CheckpointWriter):
            if writer.version > FORMAT_VERSION:
                raise ArtifactError(
                    f"This checkpoint entry was written by a newer aitune-trt-aot (format {writer.version}; this "
                    f"version reads up to {FORMAT_VERSION}). Upgrade aitune-trt-aot to load it."
                )
            if writer.version < OLDEST_READABLE_VERSION:
                raise ArtifactError(
                    f"This checkpoint entry was written by aitune-trt-aot 0.1 (format {writer.version}) for the torch "
                    "2.11 / Torch-TensorRT 2.11 stack; its engines cannot run on Torch-TensorRT 2.14. Re-run ait.tune "
                    "with this version and save again."
                )
            guard = data.get("shape_guard")
            return cls.from_build_facts(
                data,
                config=TorchTensorRTAotBackendConfig.from_dict(data["config"]),
                artifact=_artifact(data, "artifact"),
                device=data.get("device"),
                shape_guard=None if guard is None else ShapeGuard.from_dict(guard),
                kernel_cache=None if data.get("kernel_cache") is None else _artifact(data, "kernel_cache"),
            )
        if "exported_model_path" in data:
            # AITune's built-in backend: an ExportedProgram from torch_tensorrt.save, no config, no ranges.
            return cls(
                config=TorchTensorRTAotBackendConfig(),
                artifact=_artifact(data, "exported_model_path"),
                artifact_format="exported_program",
                device=data.get("device"),
                shape_guard=None,
                precision="unknown (written by AITune's built-in backend)",
            )
        raise ArtifactError(
            "This checkpoint entry is named TorchTensorRTAotBackend but has neither aitune-trt-aot's fields nor "
            f"those of AITune's built-in backend (keys: {sorted(data)}). The checkpoint is damaged or was written "
            "by another tool."
        )


def _warm_calls(data: list[Any]) -> list[WarmCall]:
    try:
        return [WarmCall.from_dict(call) for call in data]
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(
            f"This checkpoint entry's warm-up calls are unreadable ({type(error).__name__}: {error}): the checkpoint "
            "is damaged. Restore it from a good copy, or re-run ait.tune and save again."
        ) from error


def _artifact(data: dict[str, Any], key: str) -> ArtifactPath:
    value = data.get(key)
    if not isinstance(value, ArtifactPath):
        raise ArtifactError(f"Checkpoint entry field {key!r} should be an ArtifactPath, got {type(value).__name__}.")
    return value
