#!/usr/bin/env bash
# The test command of README.md: installs what the tests need (Chromium,
# chromedriver and axe-core for the browser tests: scripts/setup-browser.sh),
# starts the services (PostgreSQL, RabbitMQ), then runs formatting and lint
# checks, the whole test suite, the mapping lint and the fixture suite with full rule
# coverage, then the systemd unit check and the Debian package test (build,
# install, run as the unit would, purge; a release build, about 5 minutes
# more; needs root, skipped otherwise or with ALLEGRO_BRIDGE_SKIP_PACKAGE=1).
# Works on a fresh Debian machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v xmllint >/dev/null 2>&1; then
    echo "installing libxml2-utils (xmllint, for the record XSD tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libxml2-utils >/dev/null
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (systemd-analyze, for the unit check)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
bash scripts/setup-browser.sh
bash scripts/start-services.sh
bash scripts/web-assets.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== the core stays pure (no async runtime, database, broker or HTTP; no clock)"
bash scripts/check-core-deps.sh
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== mapping lint"
cargo run --locked -q -- mappings check
echo "== fixture suite (every check and rule must be exercised)"
cargo run --locked -q -- mappings test --strict | tail -n 25
echo "== cargo test"
cargo test --workspace --locked --lib --bins --tests --examples
echo "== systemd unit: verify, exposure at most 1.5"
bash scripts/check-unit.sh
if [ -n "${ALLEGRO_BRIDGE_SKIP_PACKAGE:-}" ]; then
    echo "== Debian package: skipped (ALLEGRO_BRIDGE_SKIP_PACKAGE)"
elif [ "$(id -u)" -ne 0 ]; then
    echo "== Debian package: skipped (needs root: sudo bash scripts/test-package.sh)"
else
    echo "== Debian package: build, install, run as the unit, purge"
    bash scripts/test-package.sh
fi
