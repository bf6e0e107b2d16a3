#!/usr/bin/env bash
# Every phase of fsdp_qlora.py in order with N processes (default 1: the one-GPU run on the
# device), FSDP2 then FSDP1, against the package staged in $1 (a build's python/ folder; default:
# the installed one). Transformers reads the package's metadata, which a staged build lacks: a
# dist-info for it is made on the side. Prints each phase's OK/FAIL line; exits non-zero on the
# first failure.
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
run() { echo "--- $*"; timeout 240 "$@" 2>&1 | grep -E "OK|FAIL|Error|error" | grep -v Warning | tail -6; return "${PIPESTATUS[0]}"; }
for fsdp in 2 1; do
  WORK=$(mktemp -d)
  run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" train "$WORK" --fsdp $fsdp
  run "$PY" "$SCRIPT" verify "$WORK"
  [ $fsdp = 2 ] && run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" reload "$WORK"
done
run "$PY" -m torch.distributed.run --nproc-per-node "$PROCS" "$SCRIPT" accelerate "$(mktemp -d)"
echo "all phases passed"
