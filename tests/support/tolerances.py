"""Tolerances of the GPU tests, named once: largest absolute error vs eager, relative to the output scale."""

import torch

FP32 = 5e-3  # fp32 engines use TF32 matmuls (Torch-TensorRT's default)
FP16 = 3e-2

BY_PRECISION = {"fp32": FP32, "fp16": FP16, "bf16": FP16, torch.float32: FP32, torch.float16: FP16}
