#!/usr/bin/env bash
# Starts PostgreSQL and RabbitMQ for the daemon tests and the benchmark, if
# they are not running; installs them with apt-get when missing. Idempotent
# and quick when both are up. Needs root (or sudo) for installing/starting.
#
# Afterwards: PostgreSQL at 127.0.0.1:5432 (trust auth for local TCP, user
# postgres, database `test`), RabbitMQ at 127.0.0.1:5672 (guest/guest).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

apt_updated=""
need() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
if ! pg_up; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        echo "installing PostgreSQL" >&2
        need postgresql
    fi
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! $SUDO grep -q "allegro-bridge tests" "$hba"; then
        # Trust local TCP connections (test machine only).
        $SUDO sed -i '1i # allegro-bridge tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
    pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
fi

# --- RabbitMQ ---------------------------------------------------------------
if ! rabbit_up; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "installing RabbitMQ" >&2
        need rabbitmq-server
    fi
    $SUDO rabbitmq-server -detached || true
    $SUDO rabbitmqctl await_startup --timeout 120 >/dev/null
fi
rabbit_up || { echo "RabbitMQ did not start" >&2; exit 1; }
echo "services up: PostgreSQL 127.0.0.1:5432, RabbitMQ 127.0.0.1:5672" >&2
