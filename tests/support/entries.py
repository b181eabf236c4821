"""Checkpoint-entry pieces shared by CPU tests: a build record and an input guard made by hand."""

from __future__ import annotations

from typing import Any

import torch
from aitune.torch.checkpoint.artifact import ArtifactPath
from aitune.torch.module.forward_signature import ForwardSignature
from aitune.torch.module.locator import Locator

from aitune_trt_aot.checkpoint import CheckpointEntry
from aitune_trt_aot.compiled import Coverage
from aitune_trt_aot.config import TorchTensorRTAotBackendConfig
from aitune_trt_aot.ranges import InputRange
from aitune_trt_aot.shapes import ShapeGuard
from tests.support.models import MLP

BUILT_FOR = {
    "gpu": "NVIDIA H200",
    "compute_capability": "9.0",
    "tensorrt_flavour": "TensorRT-RTX",
    "tensorrt": "1.6.1.120",
    "torch_tensorrt": "2.14.0",
    "torch": "2.14.1+cu130",
    "aitune_trt_aot": "0.2.0",
}


def mlp_guard() -> ShapeGuard:
    """A guard for ``MLP`` built by hand: x of shape (1..16, 64), float32."""
    signature = ForwardSignature.from_callable(MLP().forward)
    ((locator, _),) = Locator.find_leaves({"x": torch.zeros(1, 64)}, only_tensors=True)
    return ShapeGuard(signature, [InputRange(locator, "x", (1, 64), (16, 64), (16, 64), torch.float32)], {})


def fp16_mlp_entry(artifact: ArtifactPath, **fields: Any) -> CheckpointEntry:
    """Our entry for an fp16 MLP exported program built on an H200; ``fields`` override any other field."""
    values: dict[str, Any] = {
        "config": TorchTensorRTAotBackendConfig(precision="fp16"),
        "artifact": artifact,
        "artifact_format": "exported_program",
        "device": torch.device("cuda:0"),
        "shape_guard": mlp_guard(),
        "precision": "autocast(float16)",
        "coverage": Coverage(engines=1, tensorrt_ops=5, pytorch_ops=0),
        "checksum": None,
        "built_for": BUILT_FOR,
    }
    return CheckpointEntry(**(values | fields))
