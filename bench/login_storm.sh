#!/usr/bin/env bash
# Login storm (security review issue 14, finding 2): one authd on a fresh
# SQLite database under 200 concurrent failed logins, each from its own
# X-Forwarded-For address with its own username, so every attempt reaches
# the password check (bench/login_storm.rs). Passes when authd's peak RSS
# (VmHWM) stays <= 120 MiB, the JWKS p99 during the storm <= 20 ms, and every
# login answer is the login page (200, checked) or 503 with Retry-After.
# authd runs pinned to core 0 and the load generator to core 1 (two cores
# or more), so AUTHD_PASSWORD_CHECKS defaults to 1 (the cores authd sees).
# Usage: bench/login_storm.sh [SECONDS]   (default 20; LOGIN_STORM_SESSIONS,
# LOGIN_STORM_MAX_RSS_MIB, LOGIN_STORM_MAX_JWKS_P99_MS and the rest, see
# bench/login_storm.rs; AUTHD_PASSWORD_CHECKS and AUTHD_PASSWORD_CHECK_WAIT
# are passed to authd; AUTHD_BIN and LOGIN_STORM_BIN, both set, skip the
# build and use those binaries; LOGIN_STORM_LOG=FILE keeps authd's log). About
# 1 minute after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

export LOGIN_STORM_SECONDS="${1:-${LOGIN_STORM_SECONDS:-20}}"
PORT="${LOGIN_STORM_PORT:-18090}"
BASE="http://127.0.0.1:$PORT"
AUTHD="${AUTHD_BIN:-target/release/authd}"

command -v curl >/dev/null || { echo "login_storm: needs curl" >&2; exit 1; }
if [ -n "${AUTHD_BIN:-}" ] && [ -n "${LOGIN_STORM_BIN:-}" ]; then
    LOAD="$LOGIN_STORM_BIN"
else
    echo "login_storm: building (release)" >&2
    cargo build --release --quiet
    LOAD="$(cargo bench --bench login_storm --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"
fi
[ -x "$AUTHD" ] || { echo "login_storm: no authd binary at $AUTHD" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "login_storm: could not build bench/login_storm.rs" >&2; exit 1; }

SERVER_PIN=()
LOAD_PIN=()
if [ "$(nproc --all)" -ge 2 ] && command -v taskset >/dev/null; then
    SERVER_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c 1)
    PLACEMENT="authd on core 0, load generator on core 1"
else
    PLACEMENT="not pinned (fewer than two cores or no taskset): figures not comparable"
fi

WORK="$(mktemp -d)"
SERVER_PID=""
SERVER_EXIT=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local how="exited by itself before SIGTERM"
    if [ "$(awk '{print $3}' "/proc/$SERVER_PID/stat" 2>/dev/null)" != Z ] && kill -TERM "$SERVER_PID" 2>/dev/null; then
        how="after SIGTERM"
        # A server busy with hundreds of password checks may be slow to stop.
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null && how="killed (SIGKILL) 10 s after SIGTERM"
    fi
    local code=0
    wait "$SERVER_PID" 2>/dev/null || code=$?
    SERVER_EXIT="authd $how, status $code"
    SERVER_PID=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$WORK/authd.db"
export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_BIND="127.0.0.1:$PORT"
# Every attempt comes from 127.0.0.1 with its own X-Forwarded-For address;
# the request-rate limits are raised out of the way (the login throttle,
# which counts failures, is not: the addresses and usernames avoid it).
export AUTHD_TRUSTED_PROXIES=127.0.0.1
export AUTHD_RATE_LIMIT_IP=1000000/min
export AUTHD_RATE_LIMIT_LOGIN=1000000/min
export AUTHD_RATE_LIMIT_WELL_KNOWN=1000000/min
export AUTHD_SHUTDOWN_DRAIN=0
export AUTHD_LOG_FORMAT=json
export RUST_LOG=warn

field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
WEB="$("$AUTHD" clients create --name storm --redirect-uri https://app.example/cb 2>"$WORK/cli.log")" \
    || { cat "$WORK/cli.log" >&2; exit 1; }
export LOGIN_STORM_CLIENT_ID="$(field client_id <<<"$WEB")"
export LOGIN_STORM_REDIRECT_URI=https://app.example/cb
export LOGIN_STORM_KNOWN_USER=alice
printf '%s\n' "storm password $$ $RANDOM" | "$AUTHD" users create --username alice --password-stdin \
    >/dev/null 2>"$WORK/cli.log" || { cat "$WORK/cli.log" >&2; exit 1; }

"${SERVER_PIN[@]}" "$AUTHD" serve >"$WORK/authd.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 400); do
    curl -sf -o /dev/null "$BASE/readyz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/authd.log" >&2; exit 1; }
    sleep 0.025
done
curl -sf -o /dev/null "$BASE/readyz" || { echo "login_storm: authd did not start" >&2; cat "$WORK/authd.log" >&2; exit 1; }

echo "login_storm — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc --all) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $PLACEMENT"
echo "authd: $AUTHD (pid $SERVER_PID, sees $(awk '/Cpus_allowed_list/ {print $2}' "/proc/$SERVER_PID/status") as its cores), SQLite; AUTHD_PASSWORD_CHECKS=${AUTHD_PASSWORD_CHECKS:-default} AUTHD_PASSWORD_CHECK_WAIT=${AUTHD_PASSWORD_CHECK_WAIT:-default}"

set +e
LOGIN_STORM_BASE="$BASE" LOGIN_STORM_PID="$SERVER_PID" "${LOAD_PIN[@]}" "$LOAD"
STATUS=$?
set -e

stop_server
BUSY=$(grep -c 'every password check is busy' "$WORK/authd.log" || true)
WARN=$(grep -c '"level":"WARN"' "$WORK/authd.log" || true)
ERROR=$(grep -c '"level":"ERROR"' "$WORK/authd.log" || true)
echo "$SERVER_EXIT"
echo "authd log: $WARN warnings ($BUSY 'every password check is busy'), $ERROR errors; by message:"
grep -E '"level":"(WARN|ERROR)"' "$WORK/authd.log" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p' \
    | sort | uniq -c | sort -rn | head -5 || true
[ -z "${LOGIN_STORM_LOG:-}" ] || cp "$WORK/authd.log" "$LOGIN_STORM_LOG"
exit "$STATUS"
