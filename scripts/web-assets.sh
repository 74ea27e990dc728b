#!/usr/bin/env bash
# Installs the workbench's pinned design system (KERN, @kern-ux/native, see
# crates/web/assets/package.json and package-lock.json) with `npm ci`.
# Idempotent: does nothing when node_modules matches the lock file. Installs
# Debian's npm first if it is missing. Called by run.sh, test.sh and
# test-package.sh; nothing is fetched at run time, the files are served
# (and packaged) from crates/web/assets.
set -euo pipefail
cd "$(dirname "$0")/../crates/web/assets"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v npm >/dev/null 2>&1; then
    echo "installing npm (for the workbench's KERN styles)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
fi
# npm writes node_modules/.package-lock.json on install: same content as
# what the lock file pins, and the KERN styles are there, means up to date.
stamp=node_modules/.allegro-bridge-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/@kern-ux/native/dist/kern.min.css ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
echo "== npm ci (crates/web/assets: KERN)" >&2
npm ci --ignore-scripts --no-audit --no-fund >&2
echo "$want" > "$stamp"
