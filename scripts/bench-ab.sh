#!/usr/bin/env bash
# Two gwhost builds side by side, on the same backend, in one run: for a before/after
# claim about gwhost's own speed.
#
#   scripts/bench-ab.sh A B
#
# A and B are git revisions of this repository (built in a temporary worktree, one after
# the other, with one shared target dir) or paths to gwhost binaries already built. Both
# serve the same config (no plugins) in their own sessions (see bench-gateway.sh on
# autogroup), at each worker count in WORKERS; REPEAT interleaved rounds of wrk; prints
# for each the medians of requests/s, CPU time per request (user + system, and each, from
# /proc/PID/stat), p99 latency, how often its threads were preempted (involuntary
# context switches, /proc/PID/task/*/status) and the machine's idle CPU time, and B/A.
#
# Env: DURATION=10s REPEAT=3 THREADS=2 CONNECTIONS=64 WORKERS="1 $(nproc)"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
[[ $# == 2 ]] || { echo "usage: scripts/bench-ab.sh A B (git revisions or gwhost binaries)" >&2; exit 2; }

install_bench_tools

WORK="$(mktemp -d /tmp/gwhost-ab.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f "$WORK/backend.pid" ]] && kill "$(cat "$WORK/backend.pid")" 2>/dev/null || true
    git -C "$ROOT" worktree remove --force "$WORK/src" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

binary() { # revision or path, name -> path of a gwhost binary
    if [[ -f "$1" ]]; then
        cp "$1" "$WORK/gwhost-$2"
    else
        git -C "$ROOT" worktree add --detach -q "$WORK/src" "$1"
        CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}" cargo build -q --release \
            --manifest-path "$WORK/src/Cargo.toml" -p gwhost
        cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/gwhost" "$WORK/gwhost-$2"
        git -C "$ROOT" worktree remove --force "$WORK/src"
    fi
    echo "$WORK/gwhost-$2"
}
A_BIN="$(binary "$1" a)"
B_BIN="$(binary "$2" b)"

BACKEND_PORT=18181
start_backend "$WORK/backend" "$BACKEND_PORT" "$(nproc)"
mkdir -p "$WORK/plugins"

declare -A PORT PID
i=0
for w in $WORKERS; do
    for v in a b; do
        port=$((18182 + i)) && i=$((i + 1))
        gw_config "$port" 0 "$BACKEND_PORT" "$WORK/plugins" >"$WORK/$v-$w.json"
        bin="$A_BIN" && [[ $v == b ]] && bin="$B_BIN"
        TOKIO_WORKER_THREADS=$w RUST_LOG=warn setsid "$bin" run -c "$WORK/$v-$w.json" &
        PIDS+=($!) PORT[$v-$w]=$port PID[$v-$w]=$!
    done
done
wait_for_ports "${PORT[@]}"

measure() { # key -> `measure_proxy`'s line, then CPU µs per request (user + system)
    measure_proxy "http://127.0.0.1:${PORT[$1]}/hello" "${PID[$1]}" | awk '{printf "%s %.2f\n", $0, $3 + $4}'
}
for _ in $(seq "$REPEAT"); do
    for w in $WORKERS; do
        for v in a b; do measure "$v-$w" >>"$WORK/$v-$w.runs"; done
    done
done
echo "A = $1, B = $2; wrk -t$THREADS -c$CONNECTIONS -d$DURATION, medians of $REPEAT interleaved rounds"
echo
echo "| W | build | requests/s | CPU µs per request | user | system | p99 ms | preemptions per 1k requests | idle CPU µs per request |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
for w in $WORKERS; do
    for v in a b; do
        f="$WORK/$v-$w.runs"
        echo "| $w | ${v^^} | $(median "$f" 1) | $(median "$f" 7) | $(median "$f" 3) | $(median "$f" 4) | $(median "$f" 2) | $(median "$f" 5) | $(median "$f" 6) |"
    done
done
echo
for w in $WORKERS; do
    awk -v w="$w" -v ra="$(median "$WORK/a-$w.runs" 1)" -v rb="$(median "$WORK/b-$w.runs" 1)" \
        -v ca="$(median "$WORK/a-$w.runs" 7)" -v cb="$(median "$WORK/b-$w.runs" 7)" \
        'BEGIN {printf "- W=%s: B/A throughput %.3f, CPU per request %.3f\n", w, rb / ra, cb / ca}'
done
