#!/usr/bin/env bash
# The run command of README.md: makes sure RabbitMQ (and PostgreSQL, for the
# optional PostgreSQL store) runs locally, builds the release binary, checks
# the configuration and the mapping files, and starts the daemon in the
# foreground with the embedded defaults (SQLite store under data/, records in
# data/outbox/). Stop it with Ctrl-C or SIGTERM. Extra arguments go to `run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/start-services.sh
bash scripts/web-assets.sh
cargo build --release --locked
target/release/allegro-bridge config check
target/release/allegro-bridge mappings check
exec target/release/allegro-bridge run "$@"
