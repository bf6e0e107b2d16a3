#!/usr/bin/env bash
# Installs what it needs (see setup_env.sh), then runs the quickstart.
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$BNB_ROOT"
HF_HUB_OFFLINE=1 "$BNB_PYTHON" examples/quickstart.py "$@"
