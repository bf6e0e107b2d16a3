#!/usr/bin/env bash
# Every phase of fsdp_qlora.py in order with N processes (default 1: the one-GPU run on the
# device), FSDP2 then FSDP1, against the package staged in $1 (a build's python/ folder; default:
# the installed one; a dist-info is made on the side for its metadata). FSDP_QLORA_ARGS go to the
# train and accelerate phases (e.g. "--model llama-2048x16 --steps 20"); PHASE_TIMEOUT bounds each
# phase (240 s). Prints each phase's OK/FAIL line; a failed train phase skips its own verify and
# reload, not the other FSDP version's; exits non-zero if any failed.
#
#   bash tests/distributed/run_phases.sh [staged python folder] [processes]
set -euo pipefail
SCRIPT=$(dirname "$0")/fsdp_qlora.py
PROCS=${2:-1}
PY=${PYTHON:-python3}
source "$(dirname "$0")/../../benchmarks/cuda/common.sh"
[ -n "${1:-}" ] && export PYTHONPATH=$1:$(package_metadata_dir)
ARGS=(${FSDP_QLORA_ARGS:-})
export HF_HUB_OFFLINE=1
# A phase prints its OK/FAIL lines; a failing one, the last 60 lines of its whole output.
run() {
  echo "--- $*"
  local log status=0
  log=$(mktemp)
  timeout "${PHASE_TIMEOUT:-240}" "$@" > "$log" 2>&1 || status=$?
  grep -E "OK|FAIL" "$log" | tail -6 || true
  [ "$status" = 0 ] || { echo "--- exit $status; the end of its output:"; grep -v Warning "$log" | tail -60; }
  return "$status"
}
failed=0
for fsdp in 2 1; do
  WORK=$(mktemp -d)
  if run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" train "$WORK" --fsdp $fsdp "${ARGS[@]}"; then
    run "$PY" "$SCRIPT" verify "$WORK" || failed=1
    if [ $fsdp = 2 ]; then run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" reload "$WORK" || failed=1; fi
  else
    failed=1
  fi
done
run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" accelerate "$(mktemp -d)" "${ARGS[@]}" || failed=1
[ "$failed" = 0 ] && echo "all phases passed" || { echo "some phases FAILED"; exit 1; }
