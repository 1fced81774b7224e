#!/usr/bin/env bash
# Two gwhost builds side by side, on the same backend, in one run: for a before/after
# claim about gwhost's own speed.
#
#   scripts/bench-ab.sh A B
#
# A and B are git revisions of this repository (built in a temporary worktree, one after
# the other, with one shared target dir) or paths to gwhost binaries already built. Both
# serve the same config (no plugins; with PLUGINS=1, bench-gateway.sh's 3 plugins) in
# their own sessions (see bench-gateway.sh on autogroup), at each worker count in
# WORKERS, started afresh for each round; REPEAT interleaved rounds of wrk (A first in
# odd rounds, B in even ones); prints for each the medians of requests/s, CPU time per
# request (user + system, and each, from /proc/PID/stat), p99 latency, how often its
# threads were preempted (involuntary context switches, /proc/PID/task/*/status) and the
# machine's idle CPU time, and B/A with its 95% interval over the rounds (throughput, CPU
# per request, p99).
#
# Env: DURATION=10s REPEAT=3 THREADS=2 CONNECTIONS=64 WORKERS="1 $(nproc)" PLUGINS=0
#      BENCH_LOG=FILE: appends each round's result to FILE, as bench-gateway.sh does (here
#      the name is a-W or b-W, and a last column is user + system).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
[[ $# == 2 ]] || { echo "usage: scripts/bench-ab.sh A B (git revisions or gwhost binaries)" >&2; exit 2; }
PLUGINS="${PLUGINS:-0}"
[[ "$PLUGINS" == 0 || "$PLUGINS" == 1 ]] ||
    { echo "error: PLUGINS must be 0 or 1, not \`$PLUGINS\`" >&2; exit 2; }

install_bench_tools

WORK="$(mktemp -d /tmp/gwhost-ab.XXXXXX)"
GWHOST_PID=""
cleanup() {
    [[ -n "$GWHOST_PID" ]] && kill "$GWHOST_PID" 2>/dev/null || true
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
if [[ "$PLUGINS" == 1 ]]; then
    # Built from this checkout: its ABI is the one both builds' hosts check for.
    cargo build -q --release --manifest-path "$ROOT/Cargo.toml" -p fixture-passthrough
    cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/libfixture_passthrough.so" "$WORK/plugins/"
fi

declare -A PORT BIN
i=0
for w in $WORKERS; do
    for v in a b; do
        port=$((18182 + i)) && i=$((i + 1))
        gw_config "$port" "$PLUGINS" "$BACKEND_PORT" "$WORK/plugins" >"$WORK/$v-$w.json"
        PORT[$v-$w]=$port BIN[$v-$w]="$A_BIN"
        [[ $v == b ]] && BIN[$v-$w]="$B_BIN"
        # A plugin built for another host would only show as a gwhost that never answers.
        if [[ "$PLUGINS" == 1 ]] && ! out="$("${BIN[$v-$w]}" check -c "$WORK/$v-$w.json" 2>&1)"; then
            echo "error: build ${v^^} cannot load the plugins built from this checkout:" >&2
            echo "$out" >&2
            exit 1
        fi
    done
done
wait_for_ports "$BACKEND_PORT"

# key -> `measure_proxy`'s line, then CPU µs per request (user + system), from a gwhost
# started for this round alone (see bench-gateway.sh: a long-lived process's start-up
# state would hold for every round).
measure() {
    start_gwhost "${BIN[$1]}" "$WORK/$1.json" "${1#*-}"
    wait_for_ports "${PORT[$1]}"
    measure_proxy "http://127.0.0.1:${PORT[$1]}/hello" "$GWHOST_PID" | awk '{printf "%s %.2f\n", $0, $3 + $4}'
    stop_gwhost
}
for round in $(seq "$REPEAT"); do
    for w in $WORKERS; do
        # A first in odd rounds, B first in even ones: neither always follows the other.
        if ((round % 2 == 0)); then order="b a"; else order="a b"; fi
        for v in $order; do
            # Not in `$(...)`: the exit trap must see the gwhost `measure` starts.
            measure "$v-$w" >"$WORK/round"
            cat "$WORK/round" >>"$WORK/$v-$w.runs"
            if [[ -n "${BENCH_LOG:-}" ]]; then echo "$v-$w $(cat "$WORK/round")" >>"$BENCH_LOG"; fi
        done
    done
done
echo "A = $1, B = $2$([[ "$PLUGINS" == 1 ]] && echo ", with the 3 plugins"); wrk -t$THREADS -c$CONNECTIONS -d$DURATION, medians of $REPEAT interleaved rounds"
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
    echo "- W=$w: B/A throughput $(ratio_with_interval "$WORK/b-$w.runs" "$WORK/a-$w.runs" 1)," \
        "CPU per request $(ratio_with_interval "$WORK/b-$w.runs" "$WORK/a-$w.runs" 7)," \
        "p99 $(ratio_with_interval "$WORK/b-$w.runs" "$WORK/a-$w.runs" 2)"
done
