#!/usr/bin/env bash
# Benchmark of the check API (docs/api.md, docs/performance.md): in the same
# run, (1) the pure pipeline's single-thread rate on the contract
# Hauptantrag (`cargo bench --bench pipeline`), then `allegro-bridge api`
# (release build) under a real HTTP load generator, oha, with the same
# Hauptantrag: (2) as fast as it goes, (3) at the goal rate
# 0.7 × pipeline rate × cores, each with requests per second, p50/p99
# latency and the server's CPU per request.
#
#   bash scripts/bench-api.sh                 # DURATION=15s CONNECTIONS=16 by default
#
# oha is installed once into target/tools (cargo install, pinned). The load
# generator runs on the same machine and takes CPU from the server; the
# server's own CPU-seconds per request are printed so the rate can be put
# against the pipeline's.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-16}"
OHA_VERSION=1.16.0
target="${CARGO_TARGET_DIR:-target}"
tools="$target/tools"
oha="$tools/bin/oha"
if [ ! -x "$oha" ] || ! "$oha" --version | grep -q "$OHA_VERSION"; then
    echo "installing oha $OHA_VERSION into $tools" >&2
    cargo install oha --locked --version "$OHA_VERSION" --root "$tools" >&2
fi
cargo build --release --bin allegro-bridge >&2
bin="$target/release/allegro-bridge"
body=fixtures/contract/hauptantrag-gueltig.json
cores=$(nproc)

echo "== 1. the pipeline alone (cargo bench --bench pipeline)" >&2
pipeline=$(cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 2 2>/dev/null \
    | awk '/family Hauptantrag accepted/ { print $(NF-1) }')
goal=$(python3 -c "print(round(0.7 * $pipeline * $cores))")

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/bench.toml" <<EOF
[pipeline]
mappings_dir = "$PWD/mappings"
schemas_dir = "$PWD/schemas"
[log]
level = "warn"
[api]
listen = "127.0.0.1:$port"
clients_file = "$dir/clients.toml"
requests_per_minute = 1000000000
EOF
token=$("$bin" --config "$dir/bench.toml" api-client add bench 2>/dev/null)
"$bin" --config "$dir/bench.toml" api 2>"$dir/api.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done
url="http://127.0.0.1:$port/api/v1/pruefung"
# Warm-up, and a check that the answer is what it should be.
curl -sf "$url" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary @"$body" | grep -q '"ergebnis":"annehmbar"'

# Server CPU ticks (user + system) from /proc.
ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)

# run NAME [oha options...]: prints one line of figures.
run() {
    local name=$1
    shift
    local before after
    before=$(ticks)
    "$oha" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" "$@" \
        -m POST -T application/json -H "Authorization: Bearer $token" -D "$body" "$url" \
        >"$dir/$name.json"
    after=$(ticks)
    python3 - "$dir/$name.json" "$name" "$before" "$after" "$hz" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, before, after, hz = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
n = sum(codes.values())
ok = codes.get("200", 0)
cpu = (after - before) / hz
print(f"{name:<22} {s['requestsPerSec']:>10.0f} req/s   p50 {p['p50']*1000:6.2f} ms   "
      f"p99 {p['p99']*1000:6.2f} ms   200: {ok}/{n}   server CPU {cpu:6.1f} s = {n / cpu if cpu else 0:8.0f} req per CPU-s")
PY
}

echo "== 2./3. allegro-bridge api, $CONNECTIONS connections, $DURATION each (oha $OHA_VERSION)" >&2
echo
echo "machine: $cores cores; pipeline alone (one thread): $pipeline applications per CPU-second"
echo "goal: 0.7 × $pipeline × $cores = $goal requests per second, p99 under 10 ms at that rate"
echo
run "as fast as it goes"
run "at the goal rate" -q "$goal"
