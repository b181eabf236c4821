#!/usr/bin/env bash
# The GPU test suite, in parallel, on a GPU host whose Python has the stack (torch 2.14, Torch-TensorRT 2.14,
# AITune). Usage: bash scripts/gpu-tests.sh quick|full [pytest args...]
#   quick: one model per IR and format, each reloaded in a fresh process, plus the error paths (target <= 2 min);
#          what a change to compile or load code must pass before it lands.
#   full:  every GPU test (target <= 5 min).
# Tests marked `serial` (AITune's performance validation, which times eager against the backend) run after the
# parallel pass, alone on the GPU: sharing it with 15 other workers makes those timings a coin toss.
# AITUNE_TRT_AOT_PYTHON picks the Python (default python3); GPU_TEST_WORKERS the number of workers (default 16).
set -uo pipefail
cd "$(dirname "$0")/.."
tier=${1:-quick}; shift || true
case "$tier" in
  quick) marks="gpu and quick" ;;
  full) marks="gpu" ;;
  *) echo "usage: bash scripts/gpu-tests.sh quick|full [pytest args...]" >&2; exit 2 ;;
esac
export AITUNE_TRT_AOT_PYTHON=${AITUNE_TRT_AOT_PYTHON:-python3}
bash scripts/test.sh tests/gpu -m "$marks and not serial" -n "${GPU_TEST_WORKERS:-16}" --durations=15 -rfEs "$@"
parallel_rc=$?
serial_rc=0
if [ "$tier" = full ]; then  # the quick tier has no serial test: skip a second start-up of the stack
  bash scripts/test.sh tests/gpu -m "$marks and serial" -p no:xdist --durations=5 -rfEs "$@"
  serial_rc=$?
  [ "$serial_rc" -eq 5 ] && serial_rc=0  # 5: nothing selected (e.g. a -k that picks no serial test)
fi
[ "$parallel_rc" -ne 0 ] && exit "$parallel_rc"
exit "$serial_rc"
