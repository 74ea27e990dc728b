#!/usr/bin/env bash
# Checks the systemd unit: `systemd-analyze verify` must pass without a
# complaint about it, and `systemd-analyze security --offline=yes` must rate
# it at 1.5 or lower (--threshold takes the 0–100 scale: 15 = 1.5). Works
# without systemd as PID 1.
#
#   scripts/check-unit.sh [UNIT_FILE]     # default: systemd/allegro-bridge.service
#
# verify needs ExecStart's binary to exist. If it does not (the package is not
# installed), a copy of the unit is verified with ExecStart pointing at the
# binary cargo built ($ALLEGRO_BRIDGE_BIN, else target/release or target/debug
# under $CARGO_TARGET_DIR), so the rest of the line is still checked.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=${1:-systemd/allegro-bridge.service}
threshold=15

exec_bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
checked="$work/allegro-bridge.service"
if [ -x "$exec_bin" ]; then
    cp "$unit" "$checked"
else
    target=${CARGO_TARGET_DIR:-target}
    built=${ALLEGRO_BRIDGE_BIN:-}
    for b in "$target/release/allegro-bridge" "$target/debug/allegro-bridge"; do
        if [ -z "$built" ] && [ -x "$b" ]; then built=$(realpath "$b"); fi
    done
    if [ -z "$built" ]; then
        echo "check-unit: $exec_bin is not installed and no built binary was found; run cargo build first" >&2
        exit 1
    fi
    echo "check-unit: $exec_bin not installed; verifying with ExecStart=$built" >&2
    sed "s#^ExecStart=$exec_bin#ExecStart=$built#" "$unit" > "$checked"
fi

echo "== systemd-analyze verify $unit"
if ! systemd-analyze verify "$checked" > "$work/verify.log" 2>&1; then
    cat "$work/verify.log" >&2
    echo "check-unit: systemd-analyze verify failed" >&2
    exit 1
fi
if grep -q "allegro-bridge" "$work/verify.log"; then
    cat "$work/verify.log" >&2
    echo "check-unit: systemd-analyze verify complained about the unit" >&2
    exit 1
fi

echo "== systemd-analyze security --offline=yes --threshold=$threshold $unit"
set +e
systemd-analyze security --offline=yes --threshold="$threshold" --no-pager "$checked" > "$work/security.log" 2>&1
rc=$?
set -e
grep -v '^✓' "$work/security.log" | sed 's/[[:space:]]*$//'
if [ "$rc" -ne 0 ]; then
    echo "check-unit: exposure above $((threshold / 10)).$((threshold % 10)) (or systemd-analyze failed)" >&2
    exit 1
fi
echo "check-unit: ok"
