#!/usr/bin/env bash
# Admin API benchmark (issue 18): on SQLite and on PostgreSQL, authd pinned
# to core 0 with one worker and the admin API on its own port; the load
# generator (bench/admin_load.rs) on core 1. For each database:
#   1. 1,000 clients created with the CLI (`authd clients create`, one
#      process each, as a shell loop would) and 1,000 through the API
#      (POST /admin/v1/clients, one at a time): the time of each;
#   2. up to 10,000 clients in all (the rest created through the API), then
#      the whole list read page by page (limit 200, and limit 50) five
#      times: p50 / p99 / max of one page (target: p99 <= 20 ms).
# Usage: bench/admin.sh [CLI_CREATES] [TOTAL]
set -euo pipefail
cd "$(dirname "$0")/.."

CLI_CREATES="${1:-1000}"
TOTAL="${2:-10000}"
PORT="${BENCH_PORT:-18083}"
ADMIN_PORT="${BENCH_ADMIN_PORT:-18084}"
ADMIN_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="authd_bench_admin_$$"
WORK="$(mktemp -d)"

echo "bench: building (release)" >&2
cargo build --release --quiet
LOAD="$(cargo bench --bench admin_load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"

SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_BIND="127.0.0.1:$PORT"
export AUTHD_ADMIN_BIND="127.0.0.1:$ADMIN_PORT"
export AUTHD_WORKERS=1
export RUST_LOG=warn

measure() { # measure LABEL DATABASE_URL
    export DATABASE_URL="$2"
    target/release/authd migrate >/dev/null
    local credentials id secret token
    credentials="$(target/release/authd admin bootstrap 2>/dev/null)"
    id="$(sed -n 's/.*"client_id": "\(.*\)".*/\1/p' <<<"$credentials")"
    secret="$(sed -n 's/.*"client_secret": "\(.*\)".*/\1/p' <<<"$credentials")"

    local started ended
    started=$(date +%s.%N)
    for n in $(seq 1 "$CLI_CREATES"); do
        target/release/authd clients create --name "cli client $n" >/dev/null 2>&1
    done
    ended=$(date +%s.%N)
    echo "$1: created $CLI_CREATES clients with the CLI in $(awk "BEGIN { printf \"%.1f\", $ended - $started }") s"

    taskset -c 0 target/release/authd serve >"$WORK/log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 400); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.025; done
    token="$(curl -sf -u "$id:$secret" -d grant_type=client_credentials "http://127.0.0.1:$PORT/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
    [ -n "$token" ] || { echo "bench: no admin token" >&2; cat "$WORK/log" >&2; exit 1; }
    taskset -c 1 "$LOAD" "http://127.0.0.1:$ADMIN_PORT" "$token" "$CLI_CREATES" 200 0 | sed "s/^/$1: /"
    local rest=$(( TOTAL - 2 * CLI_CREATES - 1 ))
    [ "$rest" -gt 0 ] && taskset -c 1 "$LOAD" "http://127.0.0.1:$ADMIN_PORT" "$token" "$rest" 200 0 >/dev/null
    for page in 200 50; do
        taskset -c 1 "$LOAD" "http://127.0.0.1:$ADMIN_PORT" "$token" 0 "$page" 5 | sed "s/^/$1: /"
    done
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

measure sqlite "sqlite://$WORK/authd.db"
if command -v psql >/dev/null && psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null 2>&1; then
    measure postgres "${ADMIN_URL%/*}/$DB"
else
    echo "bench: no PostgreSQL at $ADMIN_URL; SQLite only" >&2
fi
