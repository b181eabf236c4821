"""Quick start: tune a model with TorchTensorRTAotBackend, save it, load it in a new process.

Run on a machine with an NVIDIA GPU and the stack installed (``bash scripts/demo.sh`` sets one up):

    python examples/quickstart.py tune model.ait    # tune + save
    python examples/quickstart.py load model.ait    # in a NEW process: load + run, no recompilation
"""

from __future__ import annotations

import sys

import torch
from torch import nn

# isort: off
# Either order works where the package is installed with pip (its start-up hook gives aitune.torch TensorRT-RTX as
# `tensorrt`). From a checkout on PYTHONPATH, import aitune_trt_aot first: its import does the same.
import aitune_trt_aot
from aitune_trt_aot import TorchTensorRTAotBackend, TorchTensorRTAotBackendConfig
import aitune.torch as ait
# isort: on


def build_net() -> nn.Module:
    """The model to tune (fixed random weights for the example)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 10)).eval().cuda()


def strategy() -> ait.OneBackendStrategy:
    """One backend: fp16 engines, dynamic batch from the tuning data."""
    backend = TorchTensorRTAotBackend(TorchTensorRTAotBackendConfig(ir="dynamo", precision="fp16"))
    return ait.OneBackendStrategy(backend=backend)


def tune(path: str) -> None:
    """Tune with batch sizes 1 and 8 (engines accept any batch in 1..8), then save."""
    model = ait.Module(build_net(), "my-model", strategy=strategy())
    dataset = [torch.randn(128, device="cuda") for _ in range(8)]  # AITune uses data as given: put it on the GPU
    # ignore_failing_modules=False: a failed build raises instead of silently leaving the model in eager mode.
    ait.tune(model, dataset, batch_sizes=[1, 8], device="cuda", ignore_failing_modules=False)
    aitune_trt_aot.save(model, path)  # ait.save, but a killed save keeps the previous file
    print("saved", path)


def load(path: str) -> None:
    """Load the saved engines (no recompilation) and run them."""
    # ait.load, but a missing or damaged file raises an ArtifactError saying what is wrong
    model = aitune_trt_aot.load(ait.Module(build_net(), "my-model", strategy=strategy()), path)
    with torch.no_grad():
        print(model(torch.randn(5, 128, device="cuda")).shape)


if __name__ == "__main__":
    {"tune": tune, "load": load}[sys.argv[1]](sys.argv[2])
