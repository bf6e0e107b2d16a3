#!/usr/bin/env bash
# Every phase of fsdp_qlora.py in order with N processes (default 1: the one-GPU run on the
# device), FSDP2 then FSDP1, against the package staged in $1 (a build's python/ folder; default:
# the installed one). Transformers reads the package's metadata, which a staged build lacks: a
# dist-info for it is made on the side. Prints each phase's OK/FAIL line; a failed train phase
# skips its own verify and reload, not the other FSDP version's; exits non-zero if any failed.
#
#   bash tests/distributed/run_phases.sh [staged python folder] [processes]
set -euo pipefail
SCRIPT=$(dirname "$0")/fsdp_qlora.py
PROCS=${2:-1}
PY=${PYTHON:-python3}
if [ -n "${1:-}" ]; then
  SITE=$(mktemp -d) && mkdir -p "$SITE/bitsandbytes-0.50.2.dist-info"
  printf 'Metadata-Version: 2.1\nName: bitsandbytes\nVersion: 0.50.2\n' > "$SITE/bitsandbytes-0.50.2.dist-info/METADATA"
  export PYTHONPATH=$1:$SITE
fi
export HF_HUB_OFFLINE=1
# A phase prints its OK/FAIL lines; a failing one, the last 60 lines of its whole output.
run() {
  echo "--- $*"
  local log status=0
  log=$(mktemp)
  timeout 240 "$@" > "$log" 2>&1 || status=$?
  grep -E "OK|FAIL" "$log" | tail -6 || true
  [ "$status" = 0 ] || { echo "--- exit $status; the end of its output:"; grep -v Warning "$log" | tail -60; }
  return "$status"
}
failed=0
for fsdp in 2 1; do
  WORK=$(mktemp -d)
  if run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" train "$WORK" --fsdp $fsdp; then
    run "$PY" "$SCRIPT" verify "$WORK" || failed=1
    if [ $fsdp = 2 ]; then run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" reload "$WORK" || failed=1; fi
  else
    failed=1
  fi
done
run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" accelerate "$(mktemp -d)" || failed=1
[ "$failed" = 0 ] && echo "all phases passed" || { echo "some phases FAILED"; exit 1; }
