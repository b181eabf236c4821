"""Input/expected-output cases for a ``.pt2`` package, in a file both Python and C++ (examples/cpp) read.

The file is a TorchScript module whose attributes hold, for case ``i``: ``arity_i`` input tensors
``input_i_0 ...`` (the package's flat inputs) and the expected first output ``expected_i``; plus ``count`` and
``max_batch`` (the largest batch the package accepts).
"""

from __future__ import annotations

import torch


def write_cases(path: str, cases: list[tuple[list[torch.Tensor], torch.Tensor]], max_batch: int) -> None:
    """Store ``(inputs, expected output)`` cases as a TorchScript module, which C++ reads with ``torch::jit::load``."""

    class Cases(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.count = len(cases)
            self.max_batch = max_batch
            for i, (inputs, expected) in enumerate(cases):
                setattr(self, f"arity_{i}", len(inputs))
                for j, tensor in enumerate(inputs):
                    setattr(self, f"input_{i}_{j}", tensor.cpu())
                setattr(self, f"expected_{i}", expected.cpu())

        def forward(self) -> int:
            return self.count

    torch.jit.save(torch.jit.script(Cases()), path)


def read_cases(path: str) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    """Read :func:`write_cases` output."""
    module = torch.jit.load(path)
    return [
        (
            [getattr(module, f"input_{i}_{j}") for j in range(getattr(module, f"arity_{i}"))],
            getattr(module, f"expected_{i}"),
        )
        for i in range(module.count)
    ]
