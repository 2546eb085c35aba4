#!/usr/bin/env bash
# A throwaway Redis server on 127.0.0.1 for tests and benchmarks.
#
#   scripts/redis-server.sh start DIR [--fsync always|everysec|no]   # prints the server's URL
#   scripts/redis-server.sh restart DIR                                # same port, same data
#   scripts/redis-server.sh stop DIR
#
# start: finds redis-server (REDIS_SERVER, else redis-server on PATH),
# installing Debian's redis-server package first when it is missing and this
# runs as root with apt-get; starts a server on a free port of 127.0.0.1 with
# its data, log and pid file in DIR, the append-only file on with
# `appendfsync always` (or the --fsync given) and no RDB snapshots, and prints
# redis://127.0.0.1:PORT/0. Everything it prints besides the URL goes to
# stderr; it exits non-zero with a one-line reason if it cannot start.
#
# restart: stops the server DIR holds (SIGTERM: clients are disconnected, the
# append-only file is flushed) and starts it again with the same options,
# port and data - a server outage for the clients, as
# `localqueue harness run --restart-cmd` needs. It prints nothing on success.
set -euo pipefail

die() { echo "redis-server: $*" >&2; exit 1; }

die_with_log() {
    local log=$1; shift
    [ -f "$log" ] && tail -n 15 "$log" | sed 's/^/    /' >&2
    die "$@"
}

find_server() {
    if [ -n "${REDIS_SERVER:-}" ]; then echo "$REDIS_SERVER"; return 0; fi
    command -v redis-server 2>/dev/null || return 1
}

install_redis() {
    [ "$(id -u)" = 0 ] || return 1
    command -v apt-get >/dev/null || return 1
    echo "redis-server: installing Debian's redis-server package" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq redis-server; } >&2 || return 1
    # The package may start a system-wide server; these tests never use it.
    if command -v systemctl >/dev/null; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
}

running() {
    local dir=$1
    [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null
}

launch() {
    # Start the server described by DIR/redis.conf and wait until it answers.
    local dir=$1 server port
    server=$(cat "$dir/server")
    port=$(cat "$dir/port")
    "$server" "$dir/redis.conf" >/dev/null 2>&1 ||
        die_with_log "$dir/redis.log" "the server did not start (its log is above)"
    local cli
    cli=$(dirname "$server")/redis-cli
    for _ in $(seq 1 200); do
        if [ -x "$cli" ]; then
            if "$cli" -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
        elif python3 - "$port" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
EOF
        sleep 0.05
    done
    die_with_log "$dir/redis.log" "the server on port $port did not answer within 10 s (its log is above)"
}

start() {
    local dir=$1 fsync=${2:-always}
    case "$fsync" in always|everysec|no) ;; *) die "--fsync must be always, everysec or no" ;; esac
    local server
    server=$(find_server) || { install_redis && server=$(find_server); } ||
        die "no redis-server found (install Debian's redis-server package or set REDIS_SERVER)"
    [ -x "$server" ] || die "REDIS_SERVER=$server is not an executable redis-server"
    [ ! -e "$dir/redis.conf" ] || die "$dir holds a server: stop it first ($0 stop $dir) or use another directory"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
appendonly yes
appendfsync $fsync
save ""
maxclients 1000
EOF
    echo "$server" >"$dir/server"
    echo "$port" >"$dir/port"
    launch "$dir"
    echo "redis://127.0.0.1:$port/0"
}

stop_server() {
    # SIGTERM: Redis flushes the append-only file and exits.
    local dir=$1 pid
    running "$dir" || return 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}

restart() {
    local dir=$1
    [ -f "$dir/redis.conf" ] || die "no server in $dir (start one first: $0 start $dir)"
    dir=$(cd "$dir" && pwd)
    stop_server "$dir"
    launch "$dir"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    stop_server "$dir"
    rm -rf "$dir"
}

case "${1:-}" in
    start)
        [ $# -ge 2 ] || die "usage: $0 start DIR [--fsync always|everysec|no]"
        if [ $# -ge 3 ]; then
            [ "$3" = "--fsync" ] && [ $# -ge 4 ] || die "usage: $0 start DIR [--fsync always|everysec|no]"
            start "$2" "$4"
        else
            start "$2"
        fi
        ;;
    restart) [ $# -ge 2 ] || die "usage: $0 restart DIR"; restart "$2" ;;
    stop) [ $# -ge 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start DIR [--fsync always|everysec|no] | restart DIR | stop DIR" ;;
esac
