#!/usr/bin/env bash
# Installs what the browser tests (tests/it/workbench_browser.rs and the testkit's
# browser self-test) need, when it is missing: Debian's `chromium` and
# `chromium-driver` (no browser or driver is downloaded at test time), npm,
# and axe-core as pinned in tests/browser/package-lock.json (`npm ci`).
# Idempotent and quick when everything is in place. Needs root (or sudo) only
# for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (for the browser tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# axe-core: reinstalled only when the lock file changed since the last `npm ci`.
dir=tests/browser
stamp="$dir/node_modules/.lock-sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing axe-core (npm ci in $dir)" >&2
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
fi
