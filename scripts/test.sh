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
site_dir=$(mktemp -d)
mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"
echo "== PostgreSQL (a throwaway server for the localqueue-postgres tests)"
# Uses LOCALQUEUE_TEST_POSTGRES_URL if it is set; otherwise starts a server
# (installing Debian's postgresql package when it is missing and we are root)
# and stops it on exit. With LOCALQUEUE_REQUIRE_POSTGRES=1 (CI) a server that
# cannot start fails the run; otherwise those tests skip and say why.
if [ -z "${LOCALQUEUE_TEST_POSTGRES_URL:-}" ]; then
    pg_dir=$(mktemp -d)
    chmod 755 "$pg_dir"
    trap 'bash scripts/postgres-server.sh stop "$pg_dir/server"; rm -rf "$pg_dir"' EXIT
    if url=$(bash scripts/postgres-server.sh start "$pg_dir/server"); then
        export LOCALQUEUE_TEST_POSTGRES_URL="$url"
        echo "started $url"
    elif [ "${LOCALQUEUE_REQUIRE_POSTGRES:-}" = 1 ]; then
        echo "LOCALQUEUE_REQUIRE_POSTGRES=1 and no PostgreSQL server could be started" >&2
        exit 1
    else
        echo "no PostgreSQL server: the localqueue-postgres tests will be skipped" >&2
    fi
fi

echo "== pytest"
pytest "$@"
