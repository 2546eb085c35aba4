#!/usr/bin/env bash
# Set-up command 2: install everything, then run ruff, mypy, the docs build
# and the whole test suite. Exits non-zero if any of them fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== docs (mkdocs build --strict)"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest"
pytest "$@"
