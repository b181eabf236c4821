"""The advice that errors and warnings end with, worded once: the IR to try, ``min_block_size``, the split graph.

Errors say what was wrong where they are raised, and take what to do from here, so the same advice reads the
same everywhere. ``GENERAL_IR`` is the IR the hints send users of the other IRs to: it compiles keyword, nested
and non-tensor inputs, takes every compile setting and builds strongly typed reduced precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from aitune_trt_aot.compiled import Coverage

GENERAL_IR = "dynamo"
USE_GENERAL_IR = f"ir={GENERAL_IR!r}"  # how a config names it: ir='dynamo'

KNOWN_FAILURES = "docs/known-issues.md lists the combinations measured to fail"


def after_failed_build(ir: str) -> str:
    """Appended to a failed compile: try the general IR (nothing when that IR failed)."""
    return "" if ir == GENERAL_IR else f" Try {USE_GENERAL_IR}, which handles more models."


def for_unsupported_inputs() -> str:
    """After a refusal of keyword, nested or non-tensor inputs."""
    return f"Use {USE_GENERAL_IR}, which supports keyword, nested and non-tensor inputs."


def for_ignored_settings() -> str:
    """After the warning that an IR ignores some compile settings."""
    return f"Use {USE_GENERAL_IR} to apply them."


def for_reduced_precision(ir: str, dtype: torch.dtype) -> str:
    """After a refusal of a reduced precision the IR cannot build on a strongly typed stack."""
    return f"Use {USE_GENERAL_IR} for {dtype}, or fp32 with ir={ir!r}."


def for_failed_capture(other_capture: str) -> str:
    """After a failed TorchScript capture: the other capture, or the general IR."""
    return f"Try ts_capture={other_capture!r}, or {USE_GENERAL_IR}."


def for_pt2_export() -> str:
    """After a refusal to write a ``.pt2`` from an artifact of another format."""
    return (
        f"Tune with TorchTensorRTAotBackendConfig({USE_GENERAL_IR}, output_format='aot_inductor') to be able to "
        "save one."
    )


def for_no_engines(min_block_size: int | None) -> str:
    """After a refusal of a build in which TensorRT took no operation."""
    return (
        f"Torch-TensorRT leaves blocks of fewer than min_block_size={min_block_size} convertible operations in "
        "PyTorch: if the model is small, set compile_config min_block_size=1 (or a value below its operation count); "
        "if its operations have no TensorRT converter, keep this model eager (AITune's TorchEagerBackend)."
    )


def for_split_graph(coverage: Coverage) -> str | None:
    """What to change when a graph split around PyTorch-run operations fails after saving; None if not split."""
    if coverage.engines == 0 or coverage.pytorch_ops == 0:
        return None
    return (
        f"This graph is split: {coverage.describe()}. Torch-TensorRT 2.14 artifacts of graphs split around a "
        "PyTorch-run operation were measured to fail after saving (docs/known-issues.md: torch.fft.rfft). Wrap only "
        "the parts TensorRT converts in ait.Module (for example the layers before and after the unsupported "
        "operation, each as its own ait.Module) so that each builds into one whole engine, and leave the "
        "unsupported operation outside them."
    )


def for_unloadable_artifact(coverage: Coverage) -> str:
    """After a saved artifact failed to load back."""
    return for_split_graph(coverage) or f"Try another output_format ({KNOWN_FAILURES}), or keep this model eager."


def for_quantized_mismatch(precision: str) -> str:
    """After the self-check refused INT8/FP8 engines: the 16-bit build, leaving layers unquantized, the thresholds."""
    return (
        f"Build with precision='fp16' (or 'bf16'), or keep the layers that lose accuracy in {precision} out of the "
        "quantization with quantization=QuantizationConfig(exclude=[...]) (module names, e.g. the first and last "
        "layers); calibrating on more recorded calls can help too (aitune.torch.config.max_num_samples_stored before "
        "ait.tune). If this accuracy is acceptable, lower quantization min_cosine or raise max_relative_error."
    )


def for_no_quantized_layers() -> str:
    """After the refusal of an INT8/FP8 build in which no layer takes 8-bit inputs."""
    return (
        "Check quantization exclude and recipe (ModelOpt's recipes quantize Linear and Conv layers and leave some by "
        "name, such as *lm_head* and *output_layer*; int8 and fp8 leave convolutions unquantized, as TensorRT-RTX "
        "builds 8-bit engines only for matrix multiplications), or build with precision='fp16'."
    )


def for_mismatch(recorded: bool, ir: str, coverage: Coverage) -> str:
    """After the self-check found engines that do not reproduce eager PyTorch.

    ``recorded``: the mismatching call was a recorded one (else a call at an end of the built range).
    """
    if not recorded:
        return (
            "Engines that match the recorded calls but not the range's end usually come from a forward that "
            "branches on input sizes: a traced module keeps only the path of the call it was traced with "
            f"({USE_GENERAL_IR} refuses such a branch at compile time instead). Tune sizes over which the model "
            "takes one path, or remove the branch."
        )
    if ir != GENERAL_IR:
        return f"Try {USE_GENERAL_IR}."
    return for_split_graph(coverage) or (
        "Try another output_format, or keep this model eager; docs/known-issues.md lists what was measured."
    )


# Why lazy kernels and CUDA graphs exclude each other: the config's rule and load_pt2's, worded once.
LAZY_KERNELS_UNDER_GRAPHS = (
    "kernel_specialization='lazy' cannot be combined with CUDA graphs: TensorRT-RTX swaps in specialised kernels "
    "after a graph has captured the generic ones, and Torch-TensorRT refuses that capture as unsafe."
)
