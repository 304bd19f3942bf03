#!/usr/bin/env bash
# Soak: two authd replicas on one fresh PostgreSQL database under a bounded
# mixed load (client credentials, browser sign-ins with PKCE, code
# exchanges, /userinfo, refresh-token rotations; bench/soak.rs) for a few
# minutes. Passes with zero errors and flat RSS on both replicas.
# Usage: bench/soak.sh [SECONDS]   (default 180; SOAK_CC_WORKERS,
# SOAK_FLOW_WORKERS, SOAK_REFRESHES tune the mix, see bench/soak.rs;
# AUTHD_BIN and SOAK_LOAD_BIN, both set, skip the build and use those binaries)
set -euo pipefail
cd "$(dirname "$0")/.."

export SOAK_SECONDS="${1:-${SOAK_SECONDS:-180}}"
PORT_A="${SOAK_PORT_A:-18080}"
PORT_B="${SOAK_PORT_B:-18081}"
ADMIN_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="authd_soak_$$"
AUTHD="${AUTHD_BIN:-target/release/authd}"

command -v psql >/dev/null || { echo "soak: needs psql and a PostgreSQL server" >&2; exit 1; }

if [ -n "${AUTHD_BIN:-}" ] && [ -n "${SOAK_LOAD_BIN:-}" ]; then
    LOAD="$SOAK_LOAD_BIN"
else
    echo "soak: building (release)" >&2
    cargo build --release --quiet
    LOAD="$(cargo bench --bench soak --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"
fi
[ -x "$LOAD" ] || { echo "soak: could not build bench/soak.rs" >&2; exit 1; }

PIDS=()
LOGS="$(mktemp -d)"
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    rm -rf "$LOGS"
}
trap cleanup EXIT
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null

# Everything both replicas must share: database, master key, issuer (the
# first replica's URL; tokens, codes and sessions from either must be good
# at the other). All load comes from 127.0.0.1, so the per-IP, login and
# per-client limits are raised out of the way.
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
export AUTHD_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export AUTHD_ISSUER="http://127.0.0.1:$PORT_A" SOAK_ISSUER="http://127.0.0.1:$PORT_A"
export AUTHD_RATE_LIMIT_IP=1000000/min
export AUTHD_RATE_LIMIT_LOGIN=1000000/min
export AUTHD_RATE_TIERS=standard=1000000/min
export AUTHD_LOG_FORMAT=json
export RUST_LOG=warn

"$AUTHD" migrate >/dev/null
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
"$AUTHD" apis create --identifier https://orders.example --name Orders --scope orders:read \
    --user-access any >/dev/null 2>&1
CC="$("$AUTHD" clients create --name "soak machine" --scope orders:read 2>/dev/null)"
WEB="$("$AUTHD" clients create --name "soak web app" --redirect-uri https://app.example/cb \
    --grant-type authorization_code --grant-type refresh_token --scope orders:read 2>/dev/null)"
export SOAK_CC_ID="$(field client_id <<<"$CC")" SOAK_CC_SECRET="$(field client_secret <<<"$CC")"
export SOAK_WEB_ID="$(field client_id <<<"$WEB")" SOAK_WEB_SECRET="$(field client_secret <<<"$WEB")"
export SOAK_REDIRECT_URI=https://app.example/cb
export SOAK_PASSWORD="soak password $$"
USERS=()
for i in 1 2 3 4; do
    printf '%s\n' "$SOAK_PASSWORD" | "$AUTHD" users create --username "soak-user-$i" --password-stdin \
        --name "Soak User $i" --email "soak-user-$i@example.com" >/dev/null
    USERS+=("soak-user-$i")
done
export SOAK_USERS="$(IFS=,; echo "${USERS[*]}")"

REPLICAS=()
for port in "$PORT_A" "$PORT_B"; do
    AUTHD_BIND="127.0.0.1:$port" "$AUTHD" serve --no-migrate >"$LOGS/$port.log" 2>&1 &
    PIDS+=("$!")
    REPLICAS+=("http://127.0.0.1:$port")
done
for base in "${REPLICAS[@]}"; do
    for _ in $(seq 1 400); do curl -sf -o /dev/null "$base/readyz" && continue 2; sleep 0.025; done
    echo "soak: $base did not start" >&2; cat "$LOGS"/*.log >&2; exit 1
done
export SOAK_REPLICAS="$(IFS=,; echo "${REPLICAS[*]}")"
export SOAK_PIDS="$(IFS=,; echo "${PIDS[*]}")"

set +e
"$LOAD"
STATUS=$?
set -e

# SIGTERM: each replica should drain and exit 0.
for i in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$i]}"
    CODE=0; wait "${PIDS[$i]}" || CODE=$?
    echo "replica ${REPLICAS[$i]} exited with status $CODE after SIGTERM"
    [ "$CODE" -eq 0 ] || STATUS=1
done
PIDS=()
for port in "$PORT_A" "$PORT_B"; do
    WARN=$(grep -c '"level":"WARN"' "$LOGS/$port.log" || true)
    ERROR=$(grep -c '"level":"ERROR"' "$LOGS/$port.log" || true)
    echo "replica :$port log: $WARN warnings, $ERROR errors"
    grep -E '"level":"(WARN|ERROR)"' "$LOGS/$port.log" | head -5 || true
done
exit "$STATUS"
