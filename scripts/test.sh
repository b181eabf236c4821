#!/usr/bin/env bash
# Runs the test suite: ruff, then pytest. GPU tests (marked `gpu`) run where CUDA and Torch-TensorRT
# are importable and are skipped elsewhere. On first use it creates .venv-test with what the tests
# need (on a machine without a GPU: CPU PyTorch, AITune, TensorRT-RTX bindings).
# Set AITUNE_TRT_AOT_PYTHON to a Python that already has the stack (e.g. on a GPU host) to skip the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${AITUNE_TRT_AOT_PYTHON:-}
if [ -z "$PY" ]; then
  if [ ! -x .venv-test/bin/python ] || [ requirements/cpu-test.txt -nt .venv-test/.installed ]; then
    echo "setting up .venv-test (first run takes a few minutes)..."
    rm -rf .venv-test
    python3 -m venv .venv-test
    .venv-test/bin/python -m pip install -q --upgrade pip
    .venv-test/bin/python -m pip install -q -r requirements/cpu-test.txt
    .venv-test/bin/python -m pip install -q --no-deps "aitune==0.6.0"
    # The TensorRT-RTX 1.x wrapper's plugin subpackage imports a module its bindings wheel lacks.
    rm -rf "$(.venv-test/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tensorrt_rtx/plugin"
    touch .venv-test/.installed
  fi
  PY=.venv-test/bin/python
fi
if "$PY" -m ruff --version >/dev/null 2>&1; then
  "$PY" -m ruff check aitune_trt_aot aitune_trt_aot_tensorrt_alias.py setup.py tests benchmarks examples
else
  echo "ruff is not installed for $PY: lint skipped"
fi
# TensorRT-RTX/Triton bindings report nanobind "leaks" at interpreter exit; they are noise, drop them.
"$PY" -m pytest -p no:cacheprovider "$@" \
  2> >(grep -v -E '^(nanobind: | - leaked | - \.\.\. skipped remainder|See https://nanobind)' >&2)
