#!/usr/bin/env bash
# Fails when the pure core (crates/core, package allegro-core) depends on an
# async runtime, a database or broker client, an HTTP stack, or chrono's
# clock. The compiler then enforces "the core does no I/O and never reads
# the clock" (ARCHITECTURE.md); this script keeps the manifest honest.
# Also fails when anything in the workspace pulls in OpenSSL or native-tls:
# TLS (amqps://, PostgreSQL, HTTPS) is rustls with aws-lc-rs alone.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden='^(tokio|sqlx|sqlx-core|lapin|amq-protocol|axum|hyper|reqwest|mio|socket2) '
deps=$(cargo tree --locked -p allegro-core -e normal --prefix none)
if bad=$(grep -E "$forbidden" <<<"$deps" | sort -u) && [ -n "$bad" ]; then
    echo "allegro-core must not depend on:" >&2
    echo "$bad" >&2
    exit 1
fi
features=$(cargo tree --locked -p allegro-core -e normal,features -i chrono --prefix none 2>/dev/null || true)
if grep -q 'chrono feature "clock"' <<<"$features"; then
    echo "allegro-core must not enable chrono's clock feature:" >&2
    grep -B2 -A2 'feature "clock"' <<<"$features" >&2
    exit 1
fi
all=$(cargo tree --locked --workspace -e normal,build,dev --prefix none)
if bad=$(grep -E '^(openssl|openssl-sys|native-tls) ' <<<"$all" | sort -u) && [ -n "$bad" ]; then
    echo "the workspace must not depend on OpenSSL (TLS is rustls):" >&2
    echo "$bad" >&2
    exit 1
fi
echo "allegro-core: $(sort -u <<<"$deps" | wc -l) normal dependencies, none of them forbidden; chrono without clock; no OpenSSL in the workspace"
