#!/usr/bin/env bash
# Benchmarks gwhost against nginx, side by side, on loopback, in one run:
#   1. gwhost without plugins             -> backend
#   2. gwhost with one plugin of each kind -> backend (fixtures/plugins/passthrough)
#   3. nginx proxy_pass                   -> backend
# The backend is its own nginx instance returning a fixed body; both proxies use it with
# keep-alive upstream connections. For a fair comparison the proxies get the same number
# of workers: nginx `worker_processes W`, gwhost `TOKIO_WORKER_THREADS=W` (its
# connection-serving threads), for each W in WORKERS (default: 1 and one per core).
# Each run is wrk for DURATION (default 10s) after a 2s warm-up; every configuration is
# run REPEAT times (default 3), the rounds interleaved, and the median is reported. Within
# a round the configurations run in a shuffled order (from SEED and the round's number):
# with a fixed order every configuration would follow the same one in every round, and
# whatever one run leaves behind on the shared backend would tilt the next the same way
# each time. Each proxy is started afresh for each of its rounds and stopped after it:
# what a process settles into at its start (how its backend connections fall on the
# backend's workers, its heap, where its threads run) would otherwise hold for every
# round of a run and tilt the whole run one way. Like nginx's daemons, each gwhost runs
# in its own session (`setsid`): with the kernel's autogroup scheduling a process sharing
# wrk's session shares wrk's CPU share too.
# Prints a Markdown table and, for each target, the ratio with its 95% interval over the
# rounds and a verdict (met, not met, not settled: `ratio_with_interval`); with
# --write-benchmarks it replaces the `## gwhost` section of BENCHMARKS.md.
#
# Usage: scripts/bench-gateway.sh [--write-benchmarks]
# Env:   DURATION=10s REPEAT=3 THREADS=2 CONNECTIONS=64 WORKERS="1 $(nproc)"
#        BACKEND_WORKERS=$(nproc)
#        SEED=N: the shuffle's seed (default: the time); the report shows it, so that a
#        run's orders can be repeated (with the same awk).
#        BENCH_LOG=FILE: appends each round's result to FILE, in the order run: the
#        configuration (plain-W, plugins-W or nginx-W), requests/s, p99 ms, user and system
#        CPU µs per request, preemptions per 1k requests, idle CPU µs per request.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
BACKEND_WORKERS="${BACKEND_WORKERS:-$(nproc)}"
SEED="${SEED:-$(date +%s)}"
WRITE=0
[[ "${1:-}" == "--write-benchmarks" ]] && WRITE=1

BACKEND_PORT=18081
# For the i-th worker count: nginx on 18082+10i, gwhost on 18083+10i and 18084+10i.

install_bench_tools

cd "$ROOT"
cargo build --release -p gwhost -p fixture-passthrough
GWHOST="$ROOT/target/release/gwhost"
PLUGIN="$ROOT/target/release/libfixture_passthrough.so"

WORK="$(mktemp -d /tmp/gwhost-bench.XXXXXX)"
GWHOST_PID=""
cleanup() {
    [[ -n "$GWHOST_PID" ]] && kill "$GWHOST_PID" 2>/dev/null || true
    for pidfile in "$WORK"/*.pid; do
        [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# nginx: the backend (fixed body) and, separately, the reference proxy: separate
# instances, so that the proxy, like gwhost, reaches the backend through another
# process's workers.
mkdir -p "$WORK/plugins" "$WORK/backend"
start_backend "$WORK/backend" "$BACKEND_PORT" "$BACKEND_WORKERS"
wait_for_ports "$BACKEND_PORT"
cp "$PLUGIN" "$WORK/plugins/"
i=0
for w in $WORKERS; do
    port=$((18082 + 10 * i))
    mkdir -p "$WORK/nginx-$w"
    nginx_conf "$WORK/nginx-$w" "$WORK/nginx-$w.pid" "$w" "
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" >"$WORK/nginx-$w.conf"
    echo $port >"$WORK/nginx-$w.port"
    gw_config $((port + 1)) 0 "$BACKEND_PORT" "$WORK/plugins" >"$WORK/plain-$w.json"
    echo $((port + 1)) >"$WORK/plain-$w.port"
    gw_config $((port + 2)) 1 "$BACKEND_PORT" "$WORK/plugins" >"$WORK/plugins-$w.json"
    echo $((port + 2)) >"$WORK/plugins-$w.port"
    i=$((i + 1))
done

# name (plain-W, plugins-W or nginx-W), W -> the proxy serving on its port, the pids of
# its serving processes in $WORK/name.pids.
start_proxy() {
    if [[ $1 == nginx-* ]]; then
        rm -f "$WORK/$1.pid"
        nginx -c "$WORK/$1.conf"
        for _ in $(seq 50); do [[ -s "$WORK/$1.pid" ]] && break; sleep 0.1; done
        echo $(pgrep -P "$(cat "$WORK/$1.pid")") >"$WORK/$1.pids"
    else
        start_gwhost "$GWHOST" "$WORK/$1.json" "$2"
        echo "$GWHOST_PID" >"$WORK/$1.pids"
    fi
    wait_for_ports "$(cat "$WORK/$1.port")"
    if [[ $1 == plugins-* ]]; then
        curl -fsS -D - "http://127.0.0.1:$(cat "$WORK/$1.port")/hello" -o /dev/null \
            | grep -qi '^x-pass-server: 1' || { echo "the plugins are not active" >&2; exit 1; }
    fi
}

# name -> that proxy stopped, its port free again.
stop_proxy() {
    local pid
    if [[ $1 == nginx-* ]]; then
        pid="$(cat "$WORK/$1.pid")"
        kill -TERM "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        # Gone: the exit trap must not signal its pid, which may be reused by then.
        rm -f "$WORK/$1.pid"
    else
        stop_gwhost
    fi
}

# name -> `measure_proxy`'s line for that proxy, started for this round alone.
measure() {
    local pids result
    start_proxy "$1" "${1#*-}"
    read -ra pids <"$WORK/$1.pids"
    result="$(measure_proxy "http://127.0.0.1:$(cat "$WORK/$1.port")/hello" "${pids[@]}")"
    stop_proxy "$1"
    [[ -n "${BENCH_LOG:-}" ]] && echo "$1 $result" >>"$BENCH_LOG"
    echo "$result"
}
ROWS="" SUMMARY=""
# REPEAT interleaved rounds, each in its own shuffled order (see the top), so that a slow
# minute of this shared machine does not land on one configuration only; then the median
# of each.
CONFIGURATIONS="$(for w in $WORKERS; do echo "plain-$w plugins-$w nginx-$w"; done)"
for round in $(seq "$REPEAT"); do
    for name in $(printf '%s\n' $CONFIGURATIONS | awk -v seed="$((SEED + round))" 'BEGIN {srand(seed)} {print rand(), $0}' | sort -g | cut -d' ' -f2); do
        measure "$name" >>"$WORK/$name.runs"
    done
done
for w in $WORKERS; do
    PLAIN_RPS="$(median "$WORK/plain-$w.runs" 1)" PLAIN_P99="$(median "$WORK/plain-$w.runs" 2)"
    PLUGINS_RPS="$(median "$WORK/plugins-$w.runs" 1)" PLUGINS_P99="$(median "$WORK/plugins-$w.runs" 2)"
    NGINX_RPS="$(median "$WORK/nginx-$w.runs" 1)" NGINX_P99="$(median "$WORK/nginx-$w.runs" 2)"
    cpu() { echo "$(median "$1" 3) + $(median "$1" 4) | $(median "$1" 6)"; }
    ROWS+="| $w | gwhost, no plugins | $PLAIN_RPS | $PLAIN_P99 ms | $(cpu "$WORK/plain-$w.runs") |
| $w | gwhost, 3 plugins (server + modifier + client) | $PLUGINS_RPS | $PLUGINS_P99 ms | $(cpu "$WORK/plugins-$w.runs") |
| $w | nginx proxy_pass | $NGINX_RPS | $NGINX_P99 ms | $(cpu "$WORK/nginx-$w.runs") |
"
    SUMMARY+="$(gateway_targets "$WORK" "$w")
"
done

COMMAND="SEED=$SEED DURATION=$DURATION REPEAT=$REPEAT THREADS=$THREADS CONNECTIONS=$CONNECTIONS WORKERS=\"$WORKERS\" BACKEND_WORKERS=$BACKEND_WORKERS scripts/bench-gateway.sh"
REPORT="$(cat <<EOF
## gwhost

\`$COMMAND\` — $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),
$(rustc -V), $(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk -t$THREADS -c$CONNECTIONS -d$DURATION on loopback, after a 2s warm-up each;
medians of $REPEAT interleaved rounds, each running every configuration once, in a shuffled order.
One backend: its own nginx instance ($BACKEND_WORKERS workers) returning a fixed 17-byte JSON
body, used by both proxies over keep-alive connections (nginx: \`keepalive 128\`, HTTP/1.1;
gwhost: its per-thread pools). Same worker count W for both proxies: nginx
\`worker_processes W\`, gwhost \`TOKIO_WORKER_THREADS=W\` (W current-thread runtimes; the
default is one per core). gwhost is a release build; "3 plugins" is
\`fixtures/plugins/passthrough\`: an http-server plugin, a request modifier and an
http-client plugin that forwards with the host's client. Each proxy runs in its own
session (nginx daemonizes; gwhost is started with \`setsid\`): with the kernel's autogroup
scheduling, a process in wrk's session would share one CPU share with wrk. Each proxy is
started afresh for each round and stopped after it, so that what a process settles into
at start (its backend connections' spread over the backend's workers, its heap, where its
threads run) does not hold for a whole run. wrk, the backend and the proxy under test
share the same cores, so absolute numbers are low; the ratios are the point. Idle CPU is
what no process used, all cores together: where it is well above zero, the proxy is not
CPU-bound and latency, not CPU, limits requests/s. Each ratio below comes with a 95%
interval, a bootstrap over the rounds: a target is "met" when the whole interval clears
it, "not met" when none of it does, and "not settled" when this run cannot tell.

| W | proxy | requests/s | p99 latency | proxy CPU µs per request (user + system) | idle CPU µs per request |
|---:|---|---:|---:|---:|---:|
$(printf '%s' "$ROWS")

$(printf '%s' "$SUMMARY")
EOF
)"
echo "$REPORT"

if [[ $WRITE == 1 ]]; then
    FILE="$ROOT/BENCHMARKS.md"
    [[ -f "$FILE" ]] || printf '# Benchmarks\n' >"$FILE"
    # Replace only this script's output: from `## gwhost` to the end marker (the notes
    # written by hand after it stay), or to the next `## ` heading if there is no marker.
    REPORT="$REPORT" python3 - "$FILE" <<'EOF'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
marker = "<!-- end of scripts/bench-gateway.sh output -->"
section = os.environ["REPORT"].rstrip() + "\n\n" + marker + "\n"
pattern = re.compile(r"^## gwhost\n.*?" + re.escape(marker) + r"\n", re.S | re.M)
if not pattern.search(text):
    pattern = re.compile(r"^## gwhost\n.*?(?=^## |\Z)", re.S | re.M)
    section += "\n"
if pattern.search(text):
    text = pattern.sub(lambda _: section, text, count=1).rstrip() + "\n"
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
EOF
    echo "wrote the gwhost section of $FILE"
fi
