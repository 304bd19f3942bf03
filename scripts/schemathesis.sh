#!/usr/bin/env bash
# Installs Schemathesis (from PyPI) for tests/api/admin_schemathesis.rs into
# a virtualenv at $HOME/.cache/authd-ci/schemathesis, where the test looks for
# it; does nothing when that version is already there. .ci/run calls it; run
# it by hand to have the test run locally (otherwise it says SKIPPED).
#
# 4.x reads OpenAPI 3.1 documents natively (3.x needed --experimental).
set -euo pipefail

version=4.32.5
venv="$HOME/.cache/authd-ci/schemathesis"

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" = "schemathesis, version $version" ]; then
    exit 0
fi

echo "schemathesis: installing schemathesis $version into $venv" >&2
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    # Debian's python3 has venv and ensurepip in a package of their own.
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
"$venv/bin/schemathesis" --version
