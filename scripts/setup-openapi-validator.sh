#!/usr/bin/env bash
# Installs the independent OpenAPI validator the check API's test uses
# (tests/it/api.rs): Python's `openapi-spec-validator`, pinned, in a virtual
# environment under target/tools/openapi-venv (nothing installed system-wide
# but Debian's python3-venv when it is missing). Idempotent and quick when in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.7.2
venv="${CARGO_TARGET_DIR:-target}/tools/openapi-venv"
bin="$venv/bin/openapi-spec-validator"
if [ -x "$bin" ] && [ "$(cat "$venv/.version" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "installing python3-venv (for the OpenAPI validator)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
fi
echo "installing openapi-spec-validator $VERSION in $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$VERSION"
echo "$VERSION" >"$venv/.version"
