#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.
#
#   scripts/postgres-server.sh start DIR [--durable]   # prints the server's URL
#   scripts/postgres-server.sh restart DIR               # same port, same data
#   scripts/postgres-server.sh stop DIR
#
# start: finds PostgreSQL's binaries (PG_BINDIR, else the newest
# /usr/lib/postgresql/*/bin, else pg_ctl on PATH), installing Debian's
# postgresql package first when they are missing and this runs as root with
# apt-get; runs initdb into DIR/data (as the `postgres` user when root, since
# initdb refuses root), starts the server on a free port with its socket in
# DIR, creates the database `localqueue_test`, and prints
# postgresql://postgres@127.0.0.1:PORT/localqueue_test. Without --durable the
# server runs with fsync off: test data is thrown away, and the tests kill
# clients, never the server. Everything it prints besides the URL goes to
# stderr; it exits non-zero with a one-line reason if it cannot start.
#
# restart: stops the server DIR holds (fast shutdown: clients are
# disconnected, everything committed is written out) and starts it again
# with the same options, port and data - a server outage for the clients,
# as `localqueue harness run --restart-cmd` needs. It prints nothing on
# success.
set -euo pipefail

die() { echo "postgres-server: $*" >&2; exit 1; }

# die, showing the end of a log first: the caller may delete the directory.
die_with_log() {
    local log=$1; shift
    [ -f "$log" ] && tail -n 15 "$log" | sed 's/^/    /' >&2
    die "$@"
}

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return 0; fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then echo "$newest"; return 0; fi
    if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

install_postgres() {
    [ "$(id -u)" = 0 ] || return 1
    command -v apt-get >/dev/null || return 1
    echo "postgres-server: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq postgresql; } >&2 || return 1
}

as_owner() {
    # Run a PostgreSQL program as the data directory's owner.
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1 durable=${2:-}
    if [ -n "${PG_BINDIR:-}" ] && [ ! -x "$PG_BINDIR/initdb" ]; then
        die "PG_BINDIR=$PG_BINDIR holds no initdb; point it at PostgreSQL's bin directory"
    fi
    local bindir
    bindir=$(find_bindir) || { install_postgres && bindir=$(find_bindir); } ||
        die "no PostgreSQL server binaries found (install Debian's postgresql package or set PG_BINDIR)"
    [ ! -e "$dir/data" ] || die "$dir/data exists: stop that server first ($0 stop $dir) or use another directory"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run initdb as"
        chown postgres "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot reach $dir; use a directory whose parents it may enter (chmod 755)"
    fi
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-instructions >"$dir/initdb.log" 2>&1 ||
        die_with_log "$dir/initdb.log" "initdb failed (its log is above)"
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir"
    opts="$opts -c max_connections=200 -c shared_buffers=128MB"
    if [ "$durable" != "--durable" ]; then
        opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start \
        >/dev/null 2>&1 || die_with_log "$dir/server.log" "the server did not start (its log is above)"
    echo "$bindir" >"$dir/bindir"
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres localqueue_test >&2 ||
        die "createdb failed against the new server on port $port"
    echo "postgresql://postgres@127.0.0.1:$port/localqueue_test"
}

restart() {
    local dir=$1
    [ -d "$dir/data" ] || die "no server in $dir (start one first: $0 start $dir)"
    local bindir
    bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir) || die "no PostgreSQL binaries found"
    # Without -o, pg_ctl restart starts the server with the options it was
    # started with (postmaster.opts): the same port and socket directory.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart \
        >/dev/null 2>&1 || die_with_log "$dir/server.log" "the server did not restart (its log is above)"
}

stop() {
    local dir=$1
    [ -d "$dir/data" ] || return 0
    local bindir
    bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir) || return 0
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: $0 start DIR [--durable]"; start "$2" "${3:-}" ;;
    restart) [ $# -ge 2 ] || die "usage: $0 restart DIR"; restart "$2" ;;
    stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start DIR [--durable] | restart DIR | stop DIR" ;;
esac
