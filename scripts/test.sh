#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, starts the
# services (PostgreSQL, RabbitMQ), then runs formatting and lint checks, the
# whole test suite, the mapping lint and the fixture suite with full rule
# coverage. Works on a fresh Debian machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v xmllint >/dev/null 2>&1; then
    echo "installing libxml2-utils (xmllint, for the record XSD tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libxml2-utils >/dev/null
fi
bash scripts/start-services.sh

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
