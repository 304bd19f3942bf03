#!/usr/bin/env bash
# Limits across replicas (issue 17), on PostgreSQL and a Redis of its own:
#
# 1. Client credentials per core with the in-process limiter, the Redis
#    limiter (leases: busy buckets taken in batches of 1 %), and the Redis
#    limiter asking Redis at every request (AUTHD_REDIS_LEASES=off),
#    alternating in one run (local, leases, exact, twice):
#    authd pinned to core 0 with one worker; wrk and redis-server on core 1,
#    so authd's core pays only for its own side of each Redis call. JWKS too
#    (its cheapest route: one Redis call per request shows most there).
# 2. Three replicas on one database, a client on a 60/min tier, requests
#    round-robin for WINDOW seconds, as fast as they are answered: admitted
#    in the first second (the burst) and in the window, without Redis and
#    with it. GCRA: a burst of 60, then one a second.
# 3. The same with Redis: stopped at WINDOW/3, started again at 2*WINDOW/3;
#    per-second counts (no 5xx expected), and where each replica counts.
#
# Usage: bench/replicas.sh [SECONDS per throughput run] [WINDOW]
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${1:-10}"
WINDOW="${2:-60}"
PORT="${BENCH_PORT:-18090}"
REDIS_PORT="${BENCH_REDIS_PORT:-16390}"
ADMIN_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="authd_bench_replicas_$$"

if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk" >&2
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk) >/dev/null
fi
for tool in psql redis-server wrk curl; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done
[ "$(nproc --all)" -ge 2 ] || { echo "bench: needs two cores" >&2; exit 1; }

echo "bench: building (release)" >&2
cargo build --release --quiet
LOAD="$(cargo bench --bench replicas_load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"
BIN=target/release/authd

WORK="$(mktemp -d)"
PIDS=()
REDIS_PID=""
cleanup() {
    for pid in "${PIDS[@]}" $REDIS_PID; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start_redis() {
    taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 200); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.025; done
    echo "bench: redis-server did not start" >&2; exit 1
}
stop_redis() { kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""; }

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_LOG_FORMAT=json RUST_LOG=warn AUTHD_SHUTDOWN_DRAIN=0
# Every request comes from 127.0.0.1: the per-IP buckets stay on (they are
# counted, in Redis too) but never refuse; the tiers are what is measured.
export AUTHD_RATE_LIMIT_IP=1000000/sec AUTHD_RATE_LIMIT_WELL_KNOWN=1000000/sec
export AUTHD_RATE_TIERS=standard=1000000/sec,low=60/min
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
start_redis

$BIN migrate >/dev/null 2>&1
$BIN apis create --identifier https://bench.example --name Bench --scope bench:read >/dev/null 2>&1
credentials() { # tier -> "ID SECRET"
    $BIN clients create --name "bench $1" --scope bench:read --rate-tier "$1" 2>/dev/null |
        sed -n 's/.*"client_\(id\|secret\)": "\(.*\)".*/\2/p' | paste -sd' '
}
read -r FAST_ID FAST_SECRET < <(credentials standard)
read -r LOW_ID LOW_SECRET < <(credentials low)

# start NAME PORT METRICS_PORT CPU REDIS_URL|- [LEASES]; appends to PIDS
start() {
    local redis=()
    [ "$5" != "-" ] && redis=(env AUTHD_REDIS_URL="$5" AUTHD_REDIS_LEASES="${6:-on}")
    "${redis[@]}" taskset -c "$4" env AUTHD_BIND="127.0.0.1:$2" AUTHD_METRICS_BIND="127.0.0.1:$3" \
        AUTHD_WORKERS=1 "$BIN" serve --no-migrate >>"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 400); do curl -sf -o /dev/null "http://127.0.0.1:$2/readyz" && return 0; sleep 0.025; done
    echo "bench: $1 did not start" >&2; cat "$WORK/$1.log" >&2; exit 1
}
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
backend() { # METRICS_PORT -> redis|local
    curl -sf "http://127.0.0.1:$1/metrics" | sed -n 's/^authd_rate_limit_backend{backend="\(.*\)"} 1$/\1/p'
}

cat >"$WORK/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$FAST_ID" "$FAST_SECRET" | base64 -w0)"
LUA
wrk_load() { taskset -c 1 wrk -t1 -c"$1" -d"$2"s --latency ${4:+-s "$4"} "$3"; }
rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
pct() {
    awk -v p="$2%" '$1 == p {
        v = $2; unit = v; gsub(/[0-9.]/, "", unit); sub(/[a-z]+$/, "", v)
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000
        printf "%.2f", v }' "$1"
}
errors() { awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$1"; }

echo
echo "1. client credentials and JWKS on one core: in-process limiter vs Redis limiter (${SECONDS_PER_RUN}s runs)"
printf '%-7s %-7s %10s %9s %9s %7s %10s %9s\n' round limits "CC tok/s" "p50 ms" "p99 ms" errors "JWKS r/s" "p99 ms"
for round in 1 2; do
    for mode in local leases exact; do
        case $mode in
            local) url=-; leases=on; want=local ;;
            leases) url="$REDIS_URL"; leases=on; want=redis ;;
            exact) url="$REDIS_URL"; leases=off; want=redis ;;
        esac
        start "single" "$PORT" $((PORT + 100)) 0 "$url" "$leases"
        seen="$(backend $((PORT + 100)))"
        [ "$seen" = "$want" ] || { echo "bench: expected $want limits, /metrics says $seen" >&2; exit 1; }
        wrk_load 16 2 "http://127.0.0.1:$PORT/token" "$WORK/cc.lua" >/dev/null
        wrk_load 16 "$SECONDS_PER_RUN" "http://127.0.0.1:$PORT/token" "$WORK/cc.lua" >"$WORK/cc-$mode-$round.txt"
        wrk_load 32 "$SECONDS_PER_RUN" "http://127.0.0.1:$PORT/.well-known/jwks.json" >"$WORK/jwks-$mode-$round.txt"
        seen="$(backend $((PORT + 100)))"
        [ "$seen" = "$want" ] || echo "bench: $mode fell back to $seen during the run" >&2
        stop_all
        printf '%-7s %-7s %10s %9s %9s %7s %10s %9s\n' "$round" "$mode" \
            "$(rps "$WORK/cc-$mode-$round.txt")" "$(pct "$WORK/cc-$mode-$round.txt" 50)" \
            "$(pct "$WORK/cc-$mode-$round.txt" 99)" "$(errors "$WORK/cc-$mode-$round.txt")" \
            "$(rps "$WORK/jwks-$mode-$round.txt")" "$(pct "$WORK/jwks-$mode-$round.txt" 99)"
    done
done
share() { # mode route -> percent of local
    awk -v l1="$(rps "$WORK/$2-local-1.txt")" -v l2="$(rps "$WORK/$2-local-2.txt")" \
        -v r1="$(rps "$WORK/$2-$1-1.txt")" -v r2="$(rps "$WORK/$2-$1-2.txt")" \
        'BEGIN { printf "%.0f%%", 100 * (r1 + r2) / (l1 + l2) }'
}
echo "CC with Redis / in process: leases $(share leases cc), exact $(share exact cc) (target >= 90%)"
echo "JWKS with Redis / in process: leases $(share leases jwks), exact $(share exact jwks)"

three() { # REDIS_URL|- : three replicas on PORT+1..3, unpinned
    for i in 1 2 3; do start "replica$i" $((PORT + i)) $((PORT + 100 + i)) 0,1 "$1"; done
}
urls() { echo "http://127.0.0.1:$((PORT + 1)) http://127.0.0.1:$((PORT + 2)) http://127.0.0.1:$((PORT + 3))"; }

echo
echo "2. three replicas, one client on a 60/min tier, round-robin, ${WINDOW}s each (one bucket: 60 at once, then 1/s)"
for mode in local redis; do
    url=-; [ "$mode" = redis ] && url="$REDIS_URL"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    three "$url"
    # shellcheck disable=SC2046
    taskset -c 1 "$LOAD" "$WINDOW" 3 "$LOW_ID" "$LOW_SECRET" $(urls) >"$WORK/three-$mode.txt"
    stop_all
    first=$(awk '/^second   0:/ {print $4}' "$WORK/three-$mode.txt")
    echo "  $mode: first second admitted $first; $(tail -1 "$WORK/three-$mode.txt")"
done

echo
echo "3. three replicas with Redis; Redis stopped at $((WINDOW / 3))s and started again at $((2 * WINDOW / 3))s"
redis-cli -p "$REDIS_PORT" flushall >/dev/null
three "$REDIS_URL"
# shellcheck disable=SC2046
taskset -c 1 "$LOAD" "$WINDOW" 3 "$LOW_ID" "$LOW_SECRET" $(urls) >"$WORK/fault.txt" &
LOAD_PID=$!
where() { echo "$(backend $((PORT + 101)))/$(backend $((PORT + 102)))/$(backend $((PORT + 103)))"; }
sleep $((WINDOW / 3 - 1)); echo "  at $((WINDOW / 3 - 1))s the replicas count in: $(where)"
sleep 1; stop_redis
sleep $((WINDOW / 3 - 1)); echo "  at $((2 * WINDOW / 3 - 1))s (Redis away):  $(where)"
sleep 1; start_redis
sleep 3; echo "  at $((2 * WINDOW / 3 + 3))s (Redis back):  $(where)"
wait "$LOAD_PID"
stop_all
awk -v a=$((WINDOW / 3)) -v b=$((2 * WINDOW / 3)) '
    /^second/ { s = $2 + 0; phase = (s < a) ? 1 : (s < b) ? 2 : 3
                adm[phase] += $4; ref[phase] += $6; err[phase] += $8; oth[phase] += $10 }
    END { split("with Redis|Redis away|Redis back", name, "|")
          for (p = 1; p <= 3; p++)
              printf "  %-11s admitted %4d refused %6d 5xx %d other %d\n", name[p], adm[p], ref[p], err[p], oth[p] }' "$WORK/fault.txt"
echo "  (expected: ~60 + 1/s with Redis; 3 x 20 + 3 x 1/3 per s while away (each replica 60/min / 3);"
echo "   Redis lost its counts when it stopped, so ~60 + 1/s again after)"
