#!/usr/bin/env bash
# Set-up command 1: install everything, then run the end-to-end demo on the
# embedded SQLite store, in a throwaway directory (pass --store URL to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
status=0
.venv/bin/python examples/demo.py "$@" || status=$?
cat <<EOF

The localqueue command is installed in $PWD/.venv/bin. To use it from this shell:
    source $PWD/.venv/bin/activate      # or: export PATH="$PWD/.venv/bin:\$PATH"
    localqueue --help
EOF
exit "$status"
