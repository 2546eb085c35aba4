#!/usr/bin/env bash
# Set-up command 1: install everything, then run the end-to-end demo on the
# embedded SQLite store, in a throwaway directory (pass --store URL to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python examples/demo.py "$@"
