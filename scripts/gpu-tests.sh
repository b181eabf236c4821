#!/usr/bin/env bash
# The GPU test suite, in parallel, on a GPU host whose Python has the stack (torch 2.14, Torch-TensorRT 2.14,
# AITune). Usage: bash scripts/gpu-tests.sh quick|full [pytest args...]
#   quick: one model per IR and format, each reloaded in a fresh process, plus the error paths (target <= 2 min);
#          what a change to compile or load code must pass before it lands.
#   full:  every GPU test (target <= 5 min).
# AITUNE_TRT_AOT_PYTHON picks the Python (default python3); GPU_TEST_WORKERS the number of workers (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
tier=${1:-quick}; shift || true
case "$tier" in
  quick) marks="gpu and quick" ;;
  full) marks="gpu" ;;
  *) echo "usage: bash scripts/gpu-tests.sh quick|full [pytest args...]" >&2; exit 2 ;;
esac
export AITUNE_TRT_AOT_PYTHON=${AITUNE_TRT_AOT_PYTHON:-python3}
exec bash scripts/test.sh tests/gpu -m "$marks" -n "${GPU_TEST_WORKERS:-16}" --durations=15 -rfEs "$@"
