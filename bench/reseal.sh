#!/usr/bin/env bash
# Master-key rotation benchmark: how fast `authd master-key rotate` re-seals
# (authd::secrets::rotate, propagation delay 0) and whether refreshes keep
# working meanwhile. bench/reseal_load.rs does the work: per run a fresh
# database (PostgreSQL: a new database on TEST_DATABASE_URL's server, dropped
# afterwards; SQLite: a temp file), TOKENS refresh tokens minted under master
# key version 1, one rotation to version 2, then the checks (everything under
# version 2; the new key alone serves old tokens and codes; the old key
# alone is refused). One online run (RESEAL_ONLINE_BATCHES, default 500)
# refreshes from RESEAL_REFRESHERS tasks (default 4) during the rotation;
# quiet runs (RESEAL_BATCHES, default 500,100,2000) only rotate. Nothing is
# pinned: the bench process and PostgreSQL share the machine's cores.
# Usage: bench/reseal.sh [TOKENS] [BACKENDS]   (defaults 20000, postgres,sqlite)
set -euo pipefail
cd "$(dirname "$0")/.."

export RESEAL_TOKENS="${1:-${RESEAL_TOKENS:-20000}}"
export RESEAL_BACKENDS="${2:-${RESEAL_BACKENDS:-postgres,sqlite}}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if [[ ",$RESEAL_BACKENDS," == *",postgres,"* ]] && command -v psql >/dev/null; then
    psql -q "$TEST_DATABASE_URL" -c "SELECT 1" >/dev/null ||
        { echo "bench: PostgreSQL at $TEST_DATABASE_URL does not answer" >&2; exit 1; }
fi

echo "bench: building (release)" >&2
LOAD="$(cargo bench --bench reseal_load --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p' | tail -1)"
[ -x "$LOAD" ] || { echo "bench: build failed" >&2; cargo bench --bench reseal_load --no-run; exit 1; }
echo "bench: $RESEAL_TOKENS tokens per run on $RESEAL_BACKENDS ($(nproc) cores)" >&2
"$LOAD"
