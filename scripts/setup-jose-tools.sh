#!/usr/bin/env bash
# Installs the independent JOSE implementation the FIT-Connect interop test
# (crates/testkit/tests/jose_interop.rs, driving tools/jose-peer.py)
# compares against: Python's `jwcrypto`, pinned with its dependencies, in a
# virtual environment under ${CARGO_TARGET_DIR:-target}/tools/jose-venv
# (nothing installed system-wide but Debian's python3-venv when it is
# missing). Idempotent and quick when in place; safe to run concurrently.
set -euo pipefail
cd "$(dirname "$0")/.."

# jwcrypto and what it pulls in, all pinned; wheels only (no compiler needed).
PINS="jwcrypto==1.6.2 cryptography==51.0.1 cffi==2.1.1 pycparser==3.12 typing_extensions==4.16.0"
tools="${CARGO_TARGET_DIR:-target}/tools"
venv="$tools/jose-venv"
mkdir -p "$tools"

# One installer at a time (the interop tests may start this in parallel).
exec 9>"$tools/jose-venv.lock"
flock 9

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$PINS" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "installing python3-venv (for jwcrypto)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
fi
echo "installing $PINS in $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
# shellcheck disable=SC2086 # PINS is a list of requirement specifiers
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: $PINS
"$venv/bin/python" -c 'import jwcrypto.jwe, jwcrypto.jws'
echo "$PINS" >"$venv/.pins"
