#!/usr/bin/env bash
# The test command of README.md: installs what the tests need (xmllint;
# poppler-utils and qpdf for the letter PDF tests; Chromium,
# chromedriver and axe-core for the browser tests: scripts/setup-browser.sh),
# starts the services (PostgreSQL, RabbitMQ), then runs formatting and lint
# checks, builds the tests, runs the mapping lint and the fixture suite with
# full rule coverage (with the binary the tests use), the whole test suite,
# then the systemd unit check and the Debian package test (that same binary
# packaged, installed, run as the unit would, purged; needs root, skipped
# otherwise or with ALLEGRO_BRIDGE_SKIP_PACKAGE=1). Each phase prints its
# start in seconds since the beginning. Works on a fresh Debian machine with
# the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
phase() { echo "== [$(($(date +%s) - start)) s] $*"; }

phase "setup: packages, services, web assets"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v xmllint >/dev/null 2>&1; then
    echo "installing libxml2-utils (xmllint, for the record XSD tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libxml2-utils >/dev/null
fi
if ! command -v pdftotext >/dev/null 2>&1; then
    echo "installing poppler-utils (pdftotext, pdffonts, pdfinfo, for the letter PDF tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq poppler-utils >/dev/null
fi
if ! command -v qpdf >/dev/null 2>&1; then
    echo "installing qpdf (qpdf --check, for the letter PDF tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qpdf >/dev/null
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (systemd-analyze, for the unit check)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi
bash scripts/setup-browser.sh
bash scripts/setup-openapi-validator.sh
bash scripts/setup-jose-tools.sh
bash scripts/start-services.sh
bash scripts/web-assets.sh

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "the core stays pure (no async runtime, database, broker or HTTP; no clock); no OpenSSL anywhere"
bash scripts/check-core-deps.sh
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# One build for everything below: the binary `cargo test` builds (with the
# dev-dependencies' features) also runs the mapping lint and fixture suite
# and goes into the package; `cargo run` would build it a second time.
phase "cargo test --no-run (build)"
cargo test --workspace --locked --lib --bins --tests --examples --no-run
bin="${CARGO_TARGET_DIR:-target}/debug/allegro-bridge"
phase "mapping lint"
"$bin" mappings check
phase "fixture suite (every check and rule must be exercised)"
"$bin" mappings test --strict | tail -n 25
phase "cargo test"
cargo test --workspace --locked --lib --bins --tests --examples
phase "systemd unit: verify, exposure at most 1.5"
bash scripts/check-unit.sh
if [ -n "${ALLEGRO_BRIDGE_SKIP_PACKAGE:-}" ]; then
    phase "Debian package: skipped (ALLEGRO_BRIDGE_SKIP_PACKAGE)"
elif [ "$(id -u)" -ne 0 ]; then
    phase "Debian package: skipped (needs root: sudo bash scripts/test-package.sh)"
else
    phase "Debian package of the tested binary: install, run as the unit, purge"
    bash scripts/test-package.sh --no-build
fi
phase "all passed"
