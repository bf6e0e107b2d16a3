#!/usr/bin/env bash
# The Python tests against the ASan + UBSan build of libbitsandbytes from
# build/sanitize (tests/fuzz/run.sh or scripts/test.sh builds it): the installed
# package is copied with its library swapped for the sanitizer build, and the ASan
# runtime is preloaded (Python and torch are not instrumented, so only the
# library's own accesses are checked).
#
#   tests/fuzz/python_sanitized.sh [pytest arguments]   (default: all of tests/python)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${BNB_PYTHON:-$root/.venv/bin/python}"
library="$root/build/sanitize/libbitsandbytes.so"
[ -e "$library" ] || { echo "no $library: run tests/fuzz/run.sh first" >&2; exit 1; }

installed="$("$python" -c 'import os, bitsandbytes; print(os.path.dirname(bitsandbytes.__file__))')"
stage="$root/build/sanitize/python-sanitized"
rm -rf "$stage"
mkdir -p "$stage"
cp -r "$installed" "$stage/bitsandbytes"
cp -L "$library" "$stage/bitsandbytes/libbitsandbytes.so"

# The whole Python suite (about 2.5 minutes on 2 cores, against about 2 without the sanitizers):
# each op against the oracle and golden data, bad input, the modules, the optimizers and the
# Transformers/PEFT/FSDP workflows, whose subprocesses inherit the preloaded runtime.
selection=(tests/python)
[ $# -gt 0 ] && selection=("$@")

export LD_PRELOAD="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$stage${PYTHONPATH:+:$PYTHONPATH}"
loaded="$("$python" -c 'import bitsandbytes; print(bitsandbytes.__file__)')"
case "$loaded" in
  "$stage"/*) ;;
  *) echo "the sanitizer build is not the package that loads ($loaded)" >&2; exit 1 ;;
esac
HF_HUB_OFFLINE=1 "$python" -m pytest -q -ra -p no:cacheprovider "${selection[@]}"
