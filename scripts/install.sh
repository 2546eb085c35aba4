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
log=.venv/install.log
: >"$log"
pip_install() {
    # Keep pip's chatter in a log; show it only if the install fails.
    if ! .venv/bin/python -m pip install --quiet "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "install failed: see the pip output above" >&2
        exit 1
    fi
}
pip_install --upgrade pip

targets=(-e ".[dev]")
if [ -f harness/pyproject.toml ]; then
    targets+=(-e ./harness)
fi
for dist in plugins/*/; do
    if [ -f "${dist}pyproject.toml" ]; then
        targets+=(-e "./${dist%/}")
    fi
done
# The example store plugin that docs/stores.md builds; the test command runs
# the conformance harness against it.
if [ -f examples/store_plugin/pyproject.toml ]; then
    targets+=(-e ./examples/store_plugin)
fi
# Strict editable installs: a plain .pth path and a tree of links to the
# sources, which mypy, pyright and IDEs can follow (the default mode's import
# hook is invisible to them, so py.typed would be ignored). Edits show at
# once; a new module appears after running this script again.
pip_install --config-settings editable_mode=strict "${targets[@]}"
echo "installed into .venv: ${targets[*]}"
