#!/usr/bin/env bash
# The main job: tunes a small model with TorchTensorRTAotBackend on the GPU, saves it as an AITune
# checkpoint and reloads it in a fresh process (python -m aitune_trt_aot.demo). Needs an NVIDIA GPU.
# On first use it creates .venv-gpu with torch 2.14 + Torch-TensorRT 2.14 (TensorRT-RTX 1.6) + AITune from PyPI,
# unless the current python3 already has them (set AITUNE_TRT_AOT_PYTHON to choose another Python).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /proc/driver/nvidia ]; then
  echo "ERROR: No NVIDIA GPU was found on this machine (no driver, no nvidia-smi). The demo builds TensorRT" >&2
  echo "engines and needs an NVIDIA GPU; nothing was run." >&2
  exit 2
fi
PY=${AITUNE_TRT_AOT_PYTHON:-python3}
if ! "$PY" -c "import torch_tensorrt, aitune" >/dev/null 2>&1; then
  if [ ! -x .venv-gpu/bin/python ]; then
    echo "setting up .venv-gpu (torch 2.14, Torch-TensorRT-RTX 2.14, AITune)..."
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install -q --upgrade pip
    .venv-gpu/bin/python -m pip install -q -e ".[tensorrt-rtx]" --no-deps
    .venv-gpu/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" "torch-tensorrt-rtx==2.14.0" dllist \
      "tensorrt-rtx-cu13-bindings==1.6.1.120" "tensorrt-rtx-cu13-libs==1.6.1.120" "tensorrt_rtx_cu13==1.6.1.120"
    grep -v -E '^(torch|triton|pytest|ruff)' requirements/cpu-test.txt | grep -v '^#' > .venv-gpu/requirements.txt
    .venv-gpu/bin/python -m pip install -q -r .venv-gpu/requirements.txt
    .venv-gpu/bin/python -m pip install -q --no-deps "aitune==0.6.0"
    rm -rf "$(.venv-gpu/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tensorrt_rtx/plugin"
  fi
  PY=.venv-gpu/bin/python
fi
exec "$PY" -m aitune_trt_aot.demo "$@"
