#!/usr/bin/env bash
# The Debian package end to end: builds it with cargo-deb (installed if
# missing), installs it with dpkg, checks what it put where, runs the
# installed binary the way allegro-bridge.service would (its user, config,
# working directory, umask, environment file and credentials folder) --
# `config check --connect`, then `submit` of the contract's valid Hauptantrag
# to a queue of its own and a short `run` that must turn it into a record in
# /var/lib/allegro-bridge/outbox and exit 0 on SIGTERM -- and finally purges
# the package and checks that it is gone.
#
#   scripts/test-package.sh             # package a debug build (cargo build; quick)
#   scripts/test-package.sh --no-build  # package target/debug/allegro-bridge as it is
#                                       # (scripts/test.sh: the binary the tests built)
#   scripts/test-package.sh --release   # `cargo deb`: the release package operators get
#
# The first two package the debug binary (`cargo deb --profile dev
# --no-build`; cargo-deb maps the asset target/release/allegro-bridge to the
# profile's folder and warns that it is meant for release builds): what is
# tested here is the packaging, the install, the unit's way of running and
# the purge, not the optimizer. Build the package for servers with plain
# `cargo deb` (release; stripped, debug info in the -dbgsym .ddeb), as
# docs/operations.md says, or test exactly that one with --release.
#
# Needs root (dpkg) on Debian with RabbitMQ on 127.0.0.1:5672 (guest/guest;
# scripts/start-services.sh). Idempotent: a package left by an aborted run is
# purged first, and the script cleans up after itself (queues, temp files, and
# the system user if this run created it). systemd need not be PID 1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CARGO_DEB_VERSION=3.8.0 # builds with Rust >= 1.85
mode=${1:-build}
case "$mode" in
build | --no-build | --release) ;;
*)
    echo "usage: scripts/test-package.sh [--no-build | --release]" >&2
    exit 2
    ;;
esac
PKG=allegro-bridge
UNIT_USER=allegro-bridge
STATE=/var/lib/allegro-bridge
CONFIG=/etc/allegro-bridge/allegro-bridge.toml
FIXTURE=fixtures/contract/hauptantrag-gueltig.json

if [ "$(id -u)" -ne 0 ]; then
    echo "test-package: needs root (dpkg -i, running as the service user)" >&2
    exit 1
fi
start=$(date +%s)
step() { echo "== [$(($(date +%s) - start)) s] $*"; }
fail() {
    echo "test-package: FAILED: $*" >&2
    exit 1
}

if ! command -v python3 >/dev/null 2>&1; then
    step "installing python3 (the sd_notify listener)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-minimal >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    step "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
bash scripts/start-services.sh

work=$(mktemp -d)
chmod 755 "$work"
queue="pkgtest-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
user_existed=no
if getent passwd "$UNIT_USER" >/dev/null; then user_existed=yes; fi

# dpkg's state of the package: installed, config-files, half-..., or
# not-installed / empty when dpkg does not know it (any more).
pkg_status() { dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null || true; }
purge() {
    case "$(pkg_status)" in
    "" | not-installed) ;;
    *) dpkg --purge "$PKG" >/dev/null ;;
    esac
}
cleanup() {
    rc=$?
    if [ -n "${daemon_pid:-}" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    if [ -n "${listener_pid:-}" ]; then kill "$listener_pid" 2>/dev/null || true; fi
    purge || true
    for q in "$queue.eingang" "$queue.dlq"; do
        rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
    done
    if [ "$user_existed" = no ] && getent passwd "$UNIT_USER" >/dev/null; then
        userdel "$UNIT_USER" 2>/dev/null || true
        groupdel "$UNIT_USER" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

step "purging a package left by an earlier run (if any)"
purge

# --fast: lighter xz compression (the debug symbols' .ddeb took 3 minutes).
step "workbench styles (npm ci, packaged from crates/web/assets)"
bash scripts/web-assets.sh
case "$mode" in
--release)
    step "cargo deb --fast (release build)"
    deb_args=()
    ;;
*)
    if [ "$mode" = build ]; then
        step "cargo build (debug)"
        cargo build --locked
    fi
    bin="${CARGO_TARGET_DIR:-target}/debug/allegro-bridge"
    [ -x "$bin" ] || fail "$bin not built (cargo build, or scripts/test-package.sh without --no-build)"
    step "cargo deb --fast --profile dev --no-build ($bin, built $(date -u -r "$bin" '+%F %T UTC'))"
    deb_args=(--profile dev --no-build)
    ;;
esac
deb=$(cargo deb --locked --fast "${deb_args[@]}" --output "$work/" | grep '\.deb$' | tail -n 1)
[ -f "${deb:-}" ] || fail "cargo deb printed no package path"
echo "$deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{print $1, $2, $6}'

step "dpkg -i"
dpkg -i "$deb"

step "what the package installed"
conffiles=$(dpkg-query -W -f='${Conffiles}' "$PKG")
for f in "$CONFIG" /etc/default/allegro-bridge; do
    grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile"
done
for f in /usr/bin/allegro-bridge \
    /usr/lib/systemd/system/allegro-bridge.service \
    /usr/lib/sysusers.d/allegro-bridge.conf \
    /usr/lib/tmpfiles.d/allegro-bridge.conf \
    /usr/share/allegro-bridge/mappings/bg-ha-1.0.toml \
    /usr/share/allegro-bridge/mappings/common/regeln-1.0.toml \
    /usr/share/allegro-bridge/schemas/allegro-import-1.0.xsd \
    /usr/share/allegro-bridge/web/app.css \
    /usr/share/allegro-bridge/web/kern/kern.min.css \
    /usr/share/allegro-bridge/web/kern/fonts/fira-sans.css \
    /usr/share/allegro-bridge/web/kern/fonts/fira-sans/FiraSans-Regular.woff2 \
    /usr/share/doc/allegro-bridge/workbench.md \
    /usr/share/doc/allegro-bridge/operations.md \
    /usr/share/doc/allegro-bridge/grafana-dashboard.json \
    /usr/share/doc/allegro-bridge/prometheus-alerts.yml; do
    [ -f "$f" ] || fail "$f missing"
done
getent passwd "$UNIT_USER" | grep -q ":$STATE:/usr/sbin/nologin$" || fail "system user $UNIT_USER"
[ "$(stat -c '%U %a' "$STATE")" = "$UNIT_USER 700" ] || fail "$STATE: $(stat -c '%U %a' "$STATE")"
[ "$(stat -c '%U %a' "$STATE/outbox")" = "$UNIT_USER 700" ] || fail "$STATE/outbox"
for c in amqp-url db-url; do
    [ "$(stat -c '%U %G %a' "/etc/allegro-bridge/credentials/$c")" = "root $UNIT_USER 640" ] ||
        fail "credential $c: $(stat -c '%U %G %a' "/etc/allegro-bridge/credentials/$c")"
done

step "the installed unit"
bash scripts/check-unit.sh /usr/lib/systemd/system/allegro-bridge.service

# What systemd hands the unit: $CREDENTIALS_DIRECTORY with copies of the
# LoadCredential= files, owned by the service user, read-only.
creds="$work/credentials"
install -d -m 0500 -o "$UNIT_USER" -g "$UNIT_USER" "$creds"
for c in amqp-url db-url; do
    install -m 0400 -o "$UNIT_USER" -g "$UNIT_USER" "/etc/allegro-bridge/credentials/$c" "$creds/$c"
done
# The unit's EnvironmentFile= (comment lines and blanks dropped).
mapfile -t envfile < <(grep -Ev '^[[:space:]]*(#|$)' /etc/default/allegro-bridge || true)
cp "$FIXTURE" "$work/application.json"
chmod 644 "$work/application.json"
antrag_id=$(sed -n 's/.*"antragId"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$FIXTURE" | head -n 1)
# Personal data of the application that must not show up in any output.
mapfile -t personal < <(sed -n 's/.*"\(familienname\|vornamen\|iban\|steuerId\)"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\2/p' "$FIXTURE" | sort -u)
[ "${#personal[@]}" -ge 4 ] || fail "could not read the fixture's personal data markers"

# The installed binary as ExecStart runs it: the unit's user, no new
# privileges, no capabilities, a clean environment (EnvironmentFile=,
# $CREDENTIALS_DIRECTORY); callers add WorkingDirectory= and UMask= in a
# subshell that execs it. setpriv execs directly, so SIGTERM reaches the
# daemon itself (runuser would stay in between and SIGKILL it 2 s after
# forwarding the signal). The queue names are this test's own.
as_user=(setpriv --reuid="$UNIT_USER" --regid="$UNIT_USER" --init-groups
    --no-new-privs --inh-caps=-all --bounding-set=-all)
unit_env=(PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
    CREDENTIALS_DIRECTORY="$creds" "${envfile[@]}"
    ALLEGRO_BRIDGE__BROKER__INTAKE_QUEUE="$queue.eingang"
    ALLEGRO_BRIDGE__BROKER__DLQ="$queue.dlq")
exec_start=(/usr/bin/allegro-bridge --config "$CONFIG")
as_unit() {
    (cd "$STATE" && umask 0077 && exec "${as_user[@]}" env -i "${unit_env[@]}" "${exec_start[@]}" "$@")
}

step "config check --connect, as $UNIT_USER"
as_unit config check --connect > "$work/config-check.out" 2> "$work/config-check.err" || {
    cat "$work/config-check.out" "$work/config-check.err" >&2
    fail "config check"
}
grep -q 'mappings_dir = "/usr/share/allegro-bridge/mappings"' "$work/config-check.out" || fail "config check: mappings_dir"
grep -q 'url = "amqp://guest:\*\*\*@127.0.0.1:5672/%2f"' "$work/config-check.out" || fail "config check: broker url from the credential, masked"
if grep -q "guest:guest" "$work/config-check.out" "$work/config-check.err"; then fail "config check printed a password"; fi
# The package's config refuses plain links to other hosts; these are loopback.
grep -qx '# Links (security.require_tls = true):' "$work/config-check.out" || fail "config check: security.require_tls on"
grep -qx '#   broker: plain (amqp:// to 127.0.0.1:5672, loopback)' "$work/config-check.out" || fail "config check: the broker link"

step "submit $FIXTURE to $queue.eingang"
as_unit submit "$work/application.json" > "$work/submit.out" 2> "$work/submit.err" || {
    cat "$work/submit.out" "$work/submit.err" >&2
    fail "submit"
}
cat "$work/submit.out"
grep -q "$antrag_id" "$work/submit.out" || fail "submit did not report antragId $antrag_id"

step "run (until the record is written), then SIGTERM"
# What Type=notify and WatchdogSec= give the daemon: a notification socket
# (here a small listener that logs each datagram), WATCHDOG_USEC and
# WATCHDOG_PID (2 s here, so a ping comes within the test).
notify_sock="$work/notify.sock"
python3 - "$notify_sock" "$work/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
listener_pid=$!
for _ in $(seq 1 50); do [ -S "$notify_sock" ] && break; sleep 0.1; done
[ -S "$notify_sock" ] || fail "notification listener did not start"
# Not through the function: $! must be the daemon itself (and WATCHDOG_PID
# its pid: the subshell's, which exec keeps).
(cd "$STATE" && umask 0077 && exec "${as_user[@]}" env -i "${unit_env[@]}" \
    NOTIFY_SOCKET="$notify_sock" WATCHDOG_USEC=2000000 WATCHDOG_PID="$BASHPID" \
    "${exec_start[@]}" run) 2> "$work/daemon.log" &
daemon_pid=$!
record="$STATE/outbox/$antrag_id.xml"
for _ in $(seq 1 120); do
    [ -f "$record" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.5
done
if [ ! -f "$record" ]; then
    cat "$work/daemon.log" >&2
    fail "no record $record within 60 s"
fi
for _ in $(seq 1 40); do
    grep -q "WATCHDOG=1" "$work/notify.log" 2>/dev/null && break
    sleep 0.1
done
kill -TERM "$daemon_pid"
set +e
wait "$daemon_pid"
code=$?
set -e
daemon_pid=
if [ "$code" -ne 0 ]; then
    cat "$work/daemon.log" >&2
    fail "run exited $code after SIGTERM (expected 0)"
fi
echo "run exited 0; record $record"
sleep 0.2
kill "$listener_pid" 2>/dev/null || true
listener_pid=
echo "notifications: $(tr '\n' ' ' < "$work/notify.log")"
for n in READY=1 WATCHDOG=1 STOPPING=1; do
    grep -q "^$n" "$work/notify.log" || fail "the daemon did not send $n"
done
[ "$(stat -c '%U %a' "$record")" = "$UNIT_USER 600" ] || fail "record owner/mode: $(stat -c '%U %a' "$record")"
grep -q "$antrag_id" "$record" || fail "record does not name $antrag_id"
[ -f "$STATE/allegro-bridge.db" ] || fail "no SQLite database in $STATE"
for marker in "${personal[@]}"; do
    if grep -qF "$marker" "$work"/*.out "$work"/*.err "$work/daemon.log"; then
        fail "personal data of the application in the output"
    fi
done

step "dpkg --purge"
dpkg --purge "$PKG"
case "$(pkg_status)" in
"" | not-installed) ;;
*) fail "package still known to dpkg: $(pkg_status)" ;;
esac
for f in /usr/bin/allegro-bridge /usr/lib/systemd/system/allegro-bridge.service \
    /usr/share/allegro-bridge /etc/allegro-bridge /etc/default/allegro-bridge "$STATE"; do
    [ ! -e "$f" ] || fail "$f still exists after purge"
done

step "ok: package built, installed, run as the unit would, purged"
