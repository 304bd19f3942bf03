#!/usr/bin/env bash
# authd benchmark: reproducible, bounded in time (about 1.5 minutes with the
# default 10 s phases), 127.0.0.1 only. authd runs on SQLite pinned to core 0;
# the load generator (wrk, from Debian; installed if absent) runs on core 1.
# Prints every figure bench/README.md quotes. Usage: bench/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_PHASE="${1:-10}"
SERVER_CPU=0
LOAD_CPU=1
PORT="${BENCH_PORT:-18080}"
BASE="http://127.0.0.1:$PORT"

if [ "$(nproc --all)" -lt 2 ]; then
    echo "bench: needs two cores (server and load generator on separate cores)" >&2
    exit 1
fi
if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk" >&2
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk) >/dev/null
fi
command -v curl >/dev/null || { apt-get update -q && apt-get install -y -q curl >/dev/null; }

echo "bench: building (release)" >&2
cargo build --release --quiet
cargo bench --bench sign_rate --no-run --quiet 2>/dev/null

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$WORK/authd.db"
export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_BIND="127.0.0.1:$PORT"
export AUTHD_LOG_FORMAT=json
export RUST_LOG=info
# All load comes from 127.0.0.1: the rate limits stay on (their cost is
# part of every request) but high enough that none refuses.
export AUTHD_RATE_LIMIT_IP=1000000/sec
export AUTHD_RATE_LIMIT_WELL_KNOWN=1000000/sec
export AUTHD_RATE_TIERS=standard=1000000/sec
BIN=target/release/authd

# --- single-core signing rates (server not running) ---------------------
OPENSSL_SIGN=$(taskset -c "$SERVER_CPU" openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
AUTHD_SIGN=$(taskset -c "$SERVER_CPU" cargo bench --quiet --bench sign_rate -- 3 2>/dev/null | awk '{print $4}')

# --- a client, and a first start that creates the signing key -----------
$BIN apis create --identifier https://bench.example --name Bench --scope bench:read >/dev/null 2>&1
CREDS="$($BIN clients create --name bench --scope bench:read 2>/dev/null)"
CLIENT_ID=$(printf '%s' "$CREDS" | sed -n 's/.*"client_id": "\(.*\)".*/\1/p')
CLIENT_SECRET=$(printf '%s' "$CREDS" | sed -n 's/.*"client_secret": "\(.*\)".*/\1/p')

start_server() {
    taskset -c "$SERVER_CPU" "$BIN" serve >>"$WORK/authd.log" 2>&1 &
    SERVER_PID=$!
}
wait_ready() {
    for _ in $(seq 1 2000); do
        curl -sf -o /dev/null "$BASE/readyz" && return 0
        sleep 0.005
    done
    echo "bench: authd did not become ready" >&2
    exit 1
}
stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

start_server
wait_ready
stop_server

# --- start-to-ready on an existing database ------------------------------
T0=$(date +%s%N)
start_server
wait_ready
READY_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
sleep 1
RSS_IDLE_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")

cat >"$WORK/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$CLIENT_ID" "$CLIENT_SECRET" | base64 -w0)"
LUA

load() { # connections seconds url [script]
    local script=()
    [ -n "${4:-}" ] && script=(-s "$4")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$1" -d"$2"s --latency "${script[@]}" "$3"
}
rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
pct() { # file percentile -> milliseconds
    awk -v p="$2%" '$1 == p {
        v = $2; unit = v; gsub(/[0-9.]/, "", unit); sub(/[a-z]+$/, "", v)
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000
        printf "%.2f", v }' "$1"
}
errors() {
    awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1"
}

# Warm up, then measure.
load 16 2 "$BASE/token" "$WORK/cc.lua" >/dev/null
load 16 "$SECONDS_PER_PHASE" "$BASE/token" "$WORK/cc.lua" >"$WORK/cc.txt"
load 32 "$SECONDS_PER_PHASE" "$BASE/.well-known/jwks.json" >"$WORK/jwks.txt"
load 32 "$SECONDS_PER_PHASE" "$BASE/.well-known/openid-configuration" >"$WORK/disc.txt"
# JWKS while client credentials saturate the signer.
load 16 "$SECONDS_PER_PHASE" "$BASE/token" "$WORK/cc.lua" >"$WORK/cc-bg.txt" &
LOAD_PID=$!
sleep 1
load 4 $((SECONDS_PER_PHASE - 2)) "$BASE/.well-known/jwks.json" >"$WORK/jwks-under.txt"
wait "$LOAD_PID"
RSS_PEAK_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")

CC=$(rps "$WORK/cc.txt")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
cat <<REPORT
authd benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc --all) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), authd on core $SERVER_CPU, wrk on core $LOAD_CPU, ${SECONDS_PER_PHASE}s phases

figure                                     value          target
CC tokens/s (16 conns)                     $CC
  p50 / p99 latency                        $(pct "$WORK/cc.txt" 50) / $(pct "$WORK/cc.txt" 99) ms
  errors (non-2xx + socket)                $(errors "$WORK/cc.txt")              0
RS256 sign/s, authd primitive (1 core)     $AUTHD_SIGN
RS256 sign/s, openssl speed (1 core)       $OPENSSL_SIGN
  CC / authd signing rate                  $(ratio "$CC" "$AUTHD_SIGN")            >= 90%
  CC / openssl signing rate                $(ratio "$CC" "$OPENSSL_SIGN")            >= 85%
JWKS req/s (32 conns)                      $(rps "$WORK/jwks.txt")          >= 50000
  p99                                      $(pct "$WORK/jwks.txt" 99) ms
  errors                                   $(errors "$WORK/jwks.txt")
discovery req/s (32 conns)                 $(rps "$WORK/disc.txt")
  p99                                      $(pct "$WORK/disc.txt" 99) ms
JWKS p99 during CC saturation (4 conns)    $(pct "$WORK/jwks-under.txt" 99) ms        <= 5 ms
  JWKS req/s meanwhile / CC tokens/s       $(rps "$WORK/jwks-under.txt") / $(rps "$WORK/cc-bg.txt")
RSS idle                                   $((RSS_IDLE_KB / 1024)) MB          <= 25 MB
RSS peak (VmHWM)                           $((RSS_PEAK_KB / 1024)) MB          <= 60 MB
start-to-ready (existing database)         $READY_MS ms         <= 500 ms
REPORT
