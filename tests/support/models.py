"""Small models and their inputs, shared by the GPU tests, the subprocess scripts and the benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class MLP(nn.Module):
    """Three linear layers with GELU."""

    def __init__(self, features: int = 64, hidden: int = 256) -> None:
        """Build the layers."""
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` of shape (batch, features)."""
        return self.net(x)


class WideMLP(nn.Module):
    """The benchmark's MLP: six Linear(512) + GELU layers."""

    def __init__(self, features: int = 512, layers: int = 6) -> None:
        """Build the layers."""
        super().__init__()
        blocks = [(nn.Linear(features, features), nn.GELU()) for _ in range(layers)]
        self.net = nn.Sequential(*[module for block in blocks for module in block])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` of shape (batch, 512) to the same shape."""
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks with batch norm, global pooling and a linear head."""

    def __init__(self) -> None:
        """Build the layers."""
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images ``x`` of shape (batch, 3, 32, 32)."""
        return self.head(torch.flatten(self.features(x), 1))


class TwoInputs(nn.Module):
    """Two tensors sharing the batch dimension plus a keyword-only tensor and a keyword-only float."""

    def __init__(self) -> None:
        """Build the layers."""
        super().__init__()
        self.a = nn.Linear(32, 64)
        self.b = nn.Linear(16, 64)
        self.out = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, bias: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """Mix ``x`` (batch, 32) and ``y`` (batch, 16), add ``bias`` (batch, 64), scale."""
        return self.out(torch.relu(self.a(x) + self.b(y) + bias)) * scale


class TwoTensors(nn.Module):
    """Two positional tensors, no constants: the guard's no-binding fast path applies."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Add the inputs."""
        return x + y


class ListInput(nn.Module):
    """A list of two tensors: AITune's locators reach into the list."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Add the two tensors."""
        return xs[0] + xs[1]


class Encoder(nn.Module):
    """A small batch-first transformer encoder (fp16 autocast in Torch-TensorRT 2.14 fails on it)."""

    def __init__(self, d_model: int = 64, layers: int = 2, seq: int = 16) -> None:
        """Build the layers."""
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=128, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.seq = seq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` of shape (batch, seq, d_model)."""
        return self.encoder(x)


class SmallMLP(nn.Module):
    """Linear-GELU-Linear: three operations, fewer than Torch-TensorRT's default min_block_size of 5."""

    def __init__(self) -> None:
        """Build the layers."""
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` of shape (batch, 64)."""
        return self.net(x)


class FFTMLP(nn.Module):
    """MLP blocks around ``torch.fft.rfft``, which TensorRT does not convert: a partly converted graph."""

    def __init__(self) -> None:
        """Build the layers."""
        super().__init__()
        self.pre = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 64))
        self.post = nn.Sequential(nn.Linear(33, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix ``x`` (batch, 64) through a real FFT's magnitudes."""
        return self.post(torch.fft.rfft(self.pre(x), dim=-1).abs())


class BatchBranchMLP(MLP):
    """An MLP whose forward branches on the batch size: outputs doubled above batch 8.

    ``torch.jit.trace`` records only the branch its example call took, so engines traced at batch 1 are wrong
    above batch 8 while matching every batch-1 call.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify ``x`` of shape (batch, features); doubled for batches over 8."""
        out = self.net(x)
        if x.shape[0] > 8:
            out = out * 2
        return out


class CumProd(nn.Module):
    """A single ``torch.cumprod``: no operation TensorRT converts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Running product along the features of ``x`` (batch, 64)."""
        return torch.cumprod(x, dim=-1)


def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50(weights=None)


@dataclass(frozen=True)
class Case:
    """A model and how to make one call's inputs for a batch size."""

    name: str
    build: Callable[[], nn.Module]
    make_inputs: Callable[[int, torch.device], tuple[tuple, dict]]


def _single(*shape: int) -> Callable[[int, torch.device], tuple[tuple, dict]]:
    def make(batch: int, device: torch.device) -> tuple[tuple, dict]:
        return (torch.randn(batch, *shape, device=device),), {}

    return make


def _two_inputs(batch: int, device: torch.device) -> tuple[tuple, dict]:
    x, y, bias = (
        torch.randn(batch, 32, device=device),
        torch.randn(batch, 16, device=device),
        torch.randn(batch, 64, device=device),
    )
    return (x, y), {"bias": bias, "scale": 0.5}


CASES = {
    "mlp": Case("mlp", MLP, _single(64)),
    "wide_mlp": Case("wide_mlp", WideMLP, _single(512)),
    "cnn": Case("cnn", SmallCNN, _single(3, 32, 32)),
    "two_inputs": Case("two_inputs", TwoInputs, _two_inputs),
    "encoder": Case("encoder", Encoder, _single(16, 64)),
    "small_mlp": Case("small_mlp", SmallMLP, _single(64)),
    "fft_mlp": Case("fft_mlp", FFTMLP, _single(64)),
    "cumprod": Case("cumprod", CumProd, _single(64)),
    "batch_branch": Case("batch_branch", BatchBranchMLP, _single(64)),
    "resnet50": Case("resnet50", _resnet50, _single(3, 224, 224)),
}


def build_model(name: str, seed: int = 0) -> nn.Module:
    """A fresh model of case ``name`` with deterministic random weights, in eval mode."""
    torch.manual_seed(seed)
    return CASES[name].build().eval()


def dataset(name: str, device: torch.device, samples: int = 4) -> list[dict[str, torch.Tensor]]:
    """AITune tuning data for case ``name``: one dict of unbatched tensors per sample (see :func:`caller`).

    Tensor arguments are named ``arg0``, ``arg1``, ... and keyword tensors keep their names: AITune
    collates dict samples per key and passes them to the tuned callable as keywords.
    """
    items = []
    for _ in range(samples):
        args, kwargs = CASES[name].make_inputs(1, device)
        item = {f"arg{i}": a[0] for i, a in enumerate(args)}
        item.update({k: v[0] for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
        items.append(item)
    return items


def caller(name: str, module: Callable) -> Callable:
    """A function taking one collated :func:`dataset` batch as keywords and calling ``module`` the usual way."""
    _, fixed = CASES[name].make_inputs(1, torch.device("cpu"))
    fixed = {k: v for k, v in fixed.items() if not isinstance(v, torch.Tensor)}

    def call(**batch: torch.Tensor):
        args = [batch.pop(f"arg{i}") for i in range(len([k for k in batch if k.startswith("arg")]))]
        return module(*args, **batch, **fixed)

    return call
