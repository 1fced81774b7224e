#!/usr/bin/env bash
# Benchmarks gwhost against nginx, side by side, on loopback, in one run:
#   1. gwhost without plugins             -> backend
#   2. gwhost with one plugin of each kind -> backend (fixtures/plugins/passthrough)
#   3. nginx proxy_pass                   -> backend
# The backend is an nginx server block returning a fixed body. Each run is wrk for
# DURATION (default 10s) after a 2s warm-up. Prints a Markdown table; with
# --write-benchmarks it replaces the `## gwhost` section of BENCHMARKS.md.
#
# Usage: scripts/bench-gateway.sh [--write-benchmarks]
# Env:   DURATION=10s THREADS=2 CONNECTIONS=64
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
WRITE=0
[[ "${1:-}" == "--write-benchmarks" ]] && WRITE=1

BACKEND_PORT=18081
NGINX_PORT=18082
PLAIN_PORT=18083
PLUGINS_PORT=18084

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq wrk nginx-light curl >/dev/null
fi

cd "$ROOT"
cargo build --release -p gwhost -p fixture-passthrough
GWHOST="$ROOT/target/release/gwhost"
PLUGIN="$ROOT/target/release/libfixture_passthrough.so"

WORK="$(mktemp -d /tmp/gwhost-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# nginx: the backend (fixed body) and the reference proxy, one worker per core.
mkdir -p "$WORK/plugins" "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 128; }
    server {
        listen 127.0.0.1:$BACKEND_PORT;
        location / { default_type application/json; return 200 '{"hello":"world"}'; }
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
nginx -c "$WORK/nginx.conf"

cp "$PLUGIN" "$WORK/plugins/"
gw_config() { # port, with-plugins
    local server="" endpoint="" backend=""
    if [[ "$2" == 1 ]]; then
        server=', "extra_config": {"plugin/http-server": {"name": ["pass-server"]}}'
        endpoint=', "extra_config": {"plugin/req-resp-modifier": {"name": ["pass-modifier"]}}'
        backend=', "extra_config": {"plugin/http-client": {"name": "pass-client"}}'
    fi
    cat <<EOF
{"version": 3, "listen_ip": "127.0.0.1", "port": $1,
 "plugin": {"folder": "plugins", "pattern": ".so"}$server,
 "endpoints": [{"endpoint": "/hello"$endpoint,
   "backend": [{"host": ["http://127.0.0.1:$BACKEND_PORT"], "url_pattern": "/hello"$backend}]}]}
EOF
}
gw_config $PLAIN_PORT 0 >"$WORK/plain.json"
gw_config $PLUGINS_PORT 1 >"$WORK/plugins.json"
RUST_LOG=warn "$GWHOST" run -c "$WORK/plain.json" & PIDS+=($!)
RUST_LOG=warn "$GWHOST" run -c "$WORK/plugins.json" & PIDS+=($!)

for port in $BACKEND_PORT $NGINX_PORT $PLAIN_PORT $PLUGINS_PORT; do
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/hello" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/hello" >/dev/null
done
curl -fsS -D - "http://127.0.0.1:$PLUGINS_PORT/hello" -o /dev/null | grep -qi '^x-pass-server: 1' \
    || { echo "the plugins are not active" >&2; exit 1; }

# wrk: requests/s and p99 (normalised to ms).
measure() { # name, port
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$2/hello" >/dev/null
    local out rps p99
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$2/hello")"
    echo "$out" >"$WORK/$1.wrk"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}' <<<"$out")"
    if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
    echo "$rps $p99"
}
read -r PLAIN_RPS PLAIN_P99 < <(measure plain $PLAIN_PORT)
read -r PLUGINS_RPS PLUGINS_P99 < <(measure plugins $PLUGINS_PORT)
read -r NGINX_RPS NGINX_P99 < <(measure nginx $NGINX_PORT)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
COMMAND="DURATION=$DURATION THREADS=$THREADS CONNECTIONS=$CONNECTIONS scripts/bench-gateway.sh"
REPORT="$(cat <<EOF
## gwhost

\`$COMMAND\` — $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),
$(rustc -V), $(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk -t$THREADS -c$CONNECTIONS -d$DURATION on loopback, after a 2s warm-up each.
One backend: an nginx server block returning a fixed 17-byte JSON body. gwhost is a release
build; "3 plugins" is \`fixtures/plugins/passthrough\`: an http-server plugin, a request
modifier and an http-client plugin that forwards with the host's client. wrk, nginx and both
gwhost processes share the same cores, so absolute numbers are low; the ratios are the point.

| proxy | requests/s | p99 latency |
|---|---:|---:|
| gwhost, no plugins | $PLAIN_RPS | $PLAIN_P99 ms |
| gwhost, 3 plugins (server + modifier + client) | $PLUGINS_RPS | $PLUGINS_P99 ms |
| nginx proxy_pass | $NGINX_RPS | $NGINX_P99 ms |

- gwhost with 3 plugins / without: $(ratio "$PLUGINS_RPS" "$PLAIN_RPS") of the throughput (target >= 95%).
- gwhost without plugins / nginx: $(ratio "$PLAIN_RPS" "$NGINX_RPS") of the throughput (target >= 100%), p99 $PLAIN_P99 ms vs $NGINX_P99 ms (target: no worse).
EOF
)"
echo "$REPORT"

if [[ $WRITE == 1 ]]; then
    FILE="$ROOT/BENCHMARKS.md"
    [[ -f "$FILE" ]] || printf '# Benchmarks\n' >"$FILE"
    # Replace only this script's section: from `## gwhost` to the next `## ` heading.
    REPORT="$REPORT" python3 - "$FILE" <<'EOF'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
section = os.environ["REPORT"].rstrip() + "\n"
pattern = re.compile(r"^## gwhost\n.*?(?=^## |\Z)", re.S | re.M)
if pattern.search(text):
    text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
else:
    text = text.rstrip() + "\n\n" + section
open(path, "w").write(text)
EOF
    echo "wrote the gwhost section of $FILE"
fi
