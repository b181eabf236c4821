"""The contract every artifact format fulfils: write a compiled model to one file, load it back to run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from aitune_trt_aot.compiled import CompiledModel


class ArtifactFormat(ABC):
    """One on-disk form of a compiled model (one of the forms ``torch_tensorrt.save`` writes)."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    cuda_graphs: ClassVar[bool] = True  # whether its calls can be captured in a CUDA graph
    runtime_settings: ClassVar[bool] = False  # whether its loaded engines take runtime settings (engine_runtime)
    quantized: ClassVar[bool] = False  # whether it holds INT8/FP8 builds (the plan refuses them where it does not)
    quantized_note: ClassVar[str] = "it is not known to hold engines built from quantize/dequantize nodes."
    # Whether its save ends in seconds of native compiles, announced through ``save``'s ``on_native_compile``: the
    # build compiles the engines' kernels meanwhile (``pipeline.early_kernels``).
    slow_save: ClassVar[bool] = False

    @abstractmethod
    def save(
        self,
        compiled: CompiledModel,
        path: Path,
        *,
        pickle_protocol: int,
        on_native_compile: Callable[[], None] | None = None,
    ) -> None:
        """Write ``compiled`` to ``path`` (the caller makes the write atomic).

        A :attr:`slow_save` format calls ``on_native_compile`` once, when what is left of the save is native work (a
        C++ compiler): from then on it runs no Python tracing, so another thread may run a copy of the engines.
        """

    @abstractmethod
    def load(self, path: Path, device: torch.device) -> Callable[..., Any]:
        """Load the artifact at ``path`` and return a callable that runs it on ``device``."""
