#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable whatever else the
# machine is doing; this machine has no hardware counters): gwhost (release, 1 worker)
# without plugins, then with the 3 passthrough plugins, each under valgrind for
# `wrk -t1 -cN -d10s` against a local nginx backend. The count includes start-up, so it
# is slightly high; compare builds with the same settings. With CONNECTIONS=1 (one
# request at a time) the count repeats to about ±10 instructions, for small A/B steps;
# at the default 8, batching moves it by about ±150.
#
# Usage: [CONNECTIONS=8] [KEEP=DIR] scripts/bench-instructions.sh [GWHOST-BINARY]   (default: build this checkout)
#   KEEP=DIR keeps each run's profile and request count (DIR/plain.callgrind, DIR/plain.n,
#   DIR/plugins.*) for scripts/callgrind-diff.py, which says per function what changed.
set -euo pipefail
CONNECTIONS="${CONNECTIONS:-8}"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
install_bench_tools
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null

cd "$ROOT"
cargo build -q --release -p gwhost -p fixture-passthrough
GWHOST="${1:-$ROOT/target/release/gwhost}"

WORK="$(mktemp -d /tmp/gwhost-instr.XXXXXX)"
cleanup() {
    pkill -f "valgrind.*$WORK" 2>/dev/null || true
    [[ -f "$WORK/backend.pid" ]] && kill "$(cat "$WORK/backend.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

BACKEND_PORT=18281 PORT=18282
start_backend "$WORK/backend" "$BACKEND_PORT" 1
mkdir -p "$WORK/plugins"
cp "$ROOT/target/release/libfixture_passthrough.so" "$WORK/plugins/"


count() { # name, with-plugins -> instructions per request
    gw_config "$PORT" "$2" "$BACKEND_PORT" "$WORK/plugins" >"$WORK/$1.json"
    TOKIO_WORKER_THREADS=1 RUST_LOG=warn valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/$1.callgrind" "$GWHOST" run -c "$WORK/$1.json" \
        >"$WORK/$1.log" 2>&1 &
    local pid=$! requests
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$PORT/hello" >/dev/null 2>&1 && break
        sleep 0.2
    done
    requests="$(wrk -t1 -c"$CONNECTIONS" -d10s "http://127.0.0.1:$PORT/hello" | awk '/requests in/ {print $1}')"
    kill -TERM "$pid"
    wait "$pid" || true
    if [[ -n "${KEEP:-}" ]]; then
        mkdir -p "$KEEP"
        cp "$WORK/$1.callgrind" "$KEEP/$1.callgrind"
        echo "$requests" >"$KEEP/$1.n"
    fi
    awk -v n="$requests" '/I *refs:/ {gsub(",", "", $NF); printf "%.0f\n", $NF / n}' "$WORK/$1.log"
}

echo "| gwhost (1 worker, wrk -t1 -c$CONNECTIONS -d10s under callgrind) | instructions per request |"
echo "|---|---:|"
echo "| no plugins | $(count plain 0) |"
echo "| 3 plugins (server + modifier + client) | $(count plugins 1) |"
