"""Write a checkpoint with AITune's BUILT-IN TorchTensorRTAotBackend, without importing aitune_trt_aot.

Usage: python -m tests.scripts.tune_with_builtin CASE CHECKPOINT EXPECTED.pt
"""

from __future__ import annotations

import sys

# isort: off
import torch_tensorrt  # noqa: F401  (first: makes `tensorrt` importable for aitune on TensorRT-RTX hosts)
import aitune.torch as ait
from aitune.torch.backend import TorchTensorRTAotBackend  # the built-in one

from tests.support.gpu import save_expected, selected_backends, tune_case
# isort: on


def main() -> None:
    """Tune, save, and store inputs with the built-in backend's outputs."""
    case, checkpoint, expected_path = sys.argv[1:4]
    tuned, reference = tune_case(case, TorchTensorRTAotBackend())
    backend_types = {f"{type(b).__module__}.{type(b).__name__}" for b in selected_backends(tuned)}
    assert backend_types == {"aitune.torch.backend.torch_tensorrt_aot_backend.TorchTensorRTAotBackend"}, backend_types
    assert "aitune_trt_aot" not in sys.modules
    save_expected(tuned, reference, case, expected_path)
    ait.save(tuned, checkpoint)
    print("saved", checkpoint)


if __name__ == "__main__":
    main()
