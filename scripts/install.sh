#!/usr/bin/env bash
# Install localqueue and everything its demo and tests need into ./.venv.
# Picks up the harness and every plugin distribution under plugins/ as they
# appear, so new distributions join without changing this script or README.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip

targets=(-e ".[dev]")
if [ -f harness/pyproject.toml ]; then
    targets+=(-e ./harness)
fi
for dist in plugins/*/; do
    if [ -f "${dist}pyproject.toml" ]; then
        targets+=(-e "./${dist%/}")
    fi
done
.venv/bin/python -m pip install --quiet "${targets[@]}"
