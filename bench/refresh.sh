#!/usr/bin/env bash
# Refresh-token benchmark (issue: ≥ 800 refresh/s on one core): authd on
# PostgreSQL pinned to core 0 with one worker; the load generator
# (bench/refresh_load.rs) on core 1; PostgreSQL unpinned. Also counts the
# database statements one refresh runs. Usage: bench/refresh.sh [SECONDS] [SCOPE]
#
# BENCH_BASE=<git revision> also builds that revision in a worktree and
# measures its binary side by side with this one, alternating
# (base, head, base, head, each on its own database): the issue-16 check
# that re-deciding permissions at every refresh (the user holds 10 roles
# through 3 groups) keeps ≥ 0.9× the base's refreshes/s on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${1:-10}"
SCOPE="${2:-offline_access orders:read}"
PORT="${BENCH_PORT:-18081}"
BASE="http://127.0.0.1:$PORT"
ADMIN_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="authd_bench_$$"

command -v psql >/dev/null || { echo "bench: needs psql and a PostgreSQL server" >&2; exit 1; }
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null

echo "bench: building (release)" >&2
cargo build --release --quiet
LOAD="$(cargo bench --bench refresh_load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"

SERVER_PID=""
LOG="$(mktemp)"
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT

export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_BIND="127.0.0.1:$PORT"
export AUTHD_WORKERS=1
export AUTHD_LOG_FORMAT=json
# All load comes from 127.0.0.1 and one client: the rate limits stay on
# (their cost is part of every request) but high enough that none refuses
# (with the defaults every refresh past 600/min was a 429).
export AUTHD_RATE_LIMIT_IP=1000000/sec
export AUTHD_RATE_TIERS=standard=1000000/sec

start() {
    RUST_LOG="$1" taskset -c 0 target/release/authd serve >"$LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 400); do curl -sf -o /dev/null "$BASE/readyz" && return 0; sleep 0.025; done
    echo "bench: authd did not start" >&2; cat "$LOG" >&2; exit 1
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

# Statements per refresh: one refresh with every SQL statement logged,
# after the client cache has picked up the new client (the once-a-second
# cache_epochs poll is not counted).
start "warn,sqlx::query=debug"
read -r CID CSECRET TOKEN < <(taskset -c 1 "$LOAD" "$BASE" 0 1 1 "$SCOPE" 2>/dev/null)
sleep 2
statements() { grep '"target":"sqlx::query"' "$LOG" | grep -vc cache_epochs || true; }
BEFORE=$(statements)
curl -sf -o /dev/null -u "$CID:$CSECRET" -d grant_type=refresh_token --data-urlencode "refresh_token=$TOKEN" "$BASE/token"
sleep 0.2
STATEMENTS=$(( $(statements) - BEFORE ))
grep '"target":"sqlx::query"' "$LOG" | grep -v cache_epochs | tail -n "$STATEMENTS" | sed -n 's/.*"summary":"\([^"]*\)".*/  \1/p' >&2
stop

run() { # run BINARY LOAD LABEL
    RUST_LOG=warn taskset -c 0 "$1" serve >"$LOG" 2>&1 &
    SERVER_PID=$!
    local ready=""
    for _ in $(seq 1 400); do curl -sf -o /dev/null "$BASE/readyz" && { ready=1; break; }; sleep 0.025; done
    [ -n "$ready" ] || { echo "bench: $3 (database ${DATABASE_URL##*/}): authd did not start" >&2; cat "$LOG" >&2; exit 1; }
    echo "bench: $3 (database ${DATABASE_URL##*/}): $SECONDS_PER_RUN s of refreshes, scope \"$SCOPE\"" >&2
    taskset -c 1 "$2" "$BASE" "$SECONDS_PER_RUN" 32 $((SECONDS_PER_RUN * 3000)) "$SCOPE" | sed "s/^/$3: /"
    stop
}

if [ -z "${BENCH_BASE:-}" ]; then
    run target/release/authd "$LOAD" head
else
    # Kept between runs (target/bench-base/REV) so that a second run does
    # not build the base again.
    BASE_DIR="$PWD/target/bench-base/$BENCH_BASE"
    if [ ! -d "$BASE_DIR" ]; then
        git worktree add --quiet --detach "$BASE_DIR" "$BENCH_BASE"
    fi
    trap 'cleanup; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS ${DB}_base WITH (FORCE)" >/dev/null || true' EXIT
    echo "bench: building $BENCH_BASE (release) in $BASE_DIR" >&2
    (cd "$BASE_DIR" && cargo build --release --quiet)
    BASE_LOAD="$(cd "$BASE_DIR" && cargo bench --bench refresh_load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"
    # Cargo prints the path relative to the base's workspace.
    case "$BASE_LOAD" in /*) ;; *) BASE_LOAD="$BASE_DIR/$BASE_LOAD" ;; esac
    psql -q "$ADMIN_URL" -c "CREATE DATABASE ${DB}_base" >/dev/null
    HEAD_URL="$DATABASE_URL"
    BASE_URL="${ADMIN_URL%/*}/${DB}_base"
    for round in 1 2; do
        export DATABASE_URL="$BASE_URL"
        run "$BASE_DIR/target/release/authd" "$BASE_LOAD" "base($BENCH_BASE) #$round"
        export DATABASE_URL="$HEAD_URL"
        run target/release/authd "$LOAD" "head #$round"
    done
fi
echo "logged database statements per refresh (COMMIT included; BEGIN is not logged): $STATEMENTS"
