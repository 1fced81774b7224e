# Shared by scripts/bench-gateway.sh, scripts/bench-ab.sh and scripts/bench-pool.sh
# (sourced, not run): their common settings, the tools they install, and how they measure
# and sum up a proxy.

DURATION="${DURATION:-10s}"
REPEAT="${REPEAT:-3}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
WORKERS="${WORKERS:-$(printf '%s\n' 1 "$(nproc)" | sort -un | tr '\n' ' ' | sed 's/ $//')}"

# wrk, nginx, curl and python3 (for `ratio_with_interval`), from Debian's packages, if
# missing.
install_bench_tools() {
    local tool
    for tool in wrk nginx curl python3; do
        command -v "$tool" >/dev/null && continue
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq wrk nginx-light curl python3 >/dev/null
        break
    done
}

# pids... -> "utime stime" of all their threads, in clock ticks.
cpu_ticks() {
    local pid
    for pid in "$@"; do cat /proc/"$pid"/task/*/stat; done | awk '{u += $14; s += $15} END {print u, s}'
}

# pids... -> how many times their threads were preempted (involuntary context switches).
preemptions() {
    local pid
    for pid in "$@"; do cat /proc/"$pid"/task/*/status; done |
        awk '/^nonvoluntary_ctxt_switches:/ {n += $2} END {print n}'
}

# -> the whole machine's idle time so far, in clock ticks (`/proc/stat`: idle + iowait).
idle_ticks() {
    awk '/^cpu / {print $5 + $6}' /proc/stat
}

# wrk's output (with --latency) on stdin -> its 99th percentile latency in ms.
p99_ms() {
    awk '$1 == "99%" {v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.2f", v}'
}

# One measurement of a proxy: wrk for 2 s to warm up, then for DURATION, with the proxy's
# CPU time and preemptions, and the machine's idle time, read around the second run.
# url, the proxy's pids... -> "requests/s p99-ms user-us system-us preemptions-per-1k
# idle-us" (CPU times per request; idle: CPU time no process used, all CPUs together).
# Exits, showing wrk's output, if any response was not 2xx.
measure_proxy() {
    local url="$1" out before after
    shift
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null
    # "utime-ticks stime-ticks preemptions idle-ticks", before and after the run.
    before="$(cpu_ticks "$@") $(preemptions "$@") $(idle_ticks)"
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url")"
    after="$(cpu_ticks "$@") $(preemptions "$@") $(idle_ticks)"
    if grep -q "Non-2xx" <<<"$out"; then echo "$url: non-2xx responses" >&2; echo "$out" >&2; exit 1; fi
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" -v p99="$(p99_ms <<<"$out")" \
        '/^Requests\/sec:/ {rps = $2} /requests in/ {n = $1}
         END {split(before, b, " "); split(after, a, " "); us = 1e6 / hz / n
              printf "%s %s %.2f %.2f %.0f %.2f\n", rps, p99, (a[1] - b[1]) * us, (a[2] - b[2]) * us,
                  1000 * (a[3] - b[3]) / n, (a[4] - b[4]) * us}' <<<"$out"
}

# runs file, column -> the median of that column.
median() {
    sort -g -k"$2" "$1" | awk -v c="$2" '{v[NR] = $c}
        END {m = int((NR + 1) / 2); if (NR % 2) print v[m]; else printf "%.2f\n", (v[m] + v[m + 1]) / 2}'
}

# Runs file A, runs file B, column, then optionally ">=" or "<=" and a target percentage
# -> the median of A's column over B's as a percentage, its 95% interval, and whether the
# target is met: "96.3% (95% interval 93.0–99.1%; target >= 95%: not settled)".
# The interval is a bootstrap over the rounds, 4,000 resamples, seeded (the same rounds
# give the same interval). When both files have a line per round, in the same order,
# rounds are resampled whole: a round's configurations ran minutes apart and share the
# machine's mood of those minutes. The medians of a few rounds on a shared machine move by
# several percent from run to run; the interval says whether a target was met with room
# to spare ("met"), missed ("not met"), or is within the noise of this run ("not
# settled"). Under 5 rounds there is no interval worth the name: none is given.
ratio_with_interval() {
    python3 - "$@" <<'PY'
import random, statistics, sys
a, b, col = sys.argv[1], sys.argv[2], int(sys.argv[3]) - 1
sense, target = (sys.argv[4], float(sys.argv[5])) if len(sys.argv) > 5 else (None, None)
if sense not in (None, ">=", "<="):
    sys.exit(f"ratio_with_interval: the comparison must be >= or <=, not `{sense}`")
def column(path):
    return [float(line.split()[col]) for line in open(path) if line.strip()]
xs, ys = column(a), column(b)
ratio = 100 * statistics.median(xs) / statistics.median(ys)
text = f"{ratio:.1f}%"
if min(len(xs), len(ys)) < 5:
    text += f" (too few rounds for an interval"
    verdict = "not settled"
else:
    rng = random.Random(1)
    resamples = 4000
    boot = []
    for _ in range(resamples):
        if len(xs) == len(ys):
            rounds = rng.choices(range(len(xs)), k=len(xs))
            ra, rb = [xs[i] for i in rounds], [ys[i] for i in rounds]
        else:
            ra, rb = rng.choices(xs, k=len(xs)), rng.choices(ys, k=len(ys))
        boot.append(100 * statistics.median(ra) / statistics.median(rb))
    boot.sort()
    # As printed, so that the verdict agrees with the figures shown.
    lo = round(boot[resamples // 40], 1)
    hi = round(boot[resamples - resamples // 40 - 1], 1)
    text += f" (95% interval {lo:.1f}–{hi:.1f}%"
    if sense == ">=":
        verdict = "met" if lo >= target else "not met" if hi < target else "not settled"
    elif sense == "<=":
        verdict = "met" if hi <= target else "not met" if lo > target else "not settled"
if sense:
    text += f"; target {sense} {sys.argv[5]}%: {verdict}"
print(text + ")")
PY
}

# A directory of runs files ({plain,plugins,nginx}-W.runs, one line per round, rounds in
# the same order in each) and a worker count W -> issue 3's three targets for W, each
# with its ratio, 95% interval and verdict (`ratio_with_interval`), as Markdown bullets.
gateway_targets() {
    local dir="$1" w="$2" plain_p99 nginx_p99
    plain_p99="$(median "$dir/plain-$w.runs" 2)" nginx_p99="$(median "$dir/nginx-$w.runs" 2)"
    echo "- $w worker(s): throughput of gwhost with 3 plugins / without: $(ratio_with_interval "$dir/plugins-$w.runs" "$dir/plain-$w.runs" 1 ">=" 95)."
    echo "  Throughput of gwhost without plugins / nginx: $(ratio_with_interval "$dir/plain-$w.runs" "$dir/nginx-$w.runs" 1 ">=" 100)."
    echo "  p99 of gwhost without plugins / nginx ($plain_p99 ms vs $nginx_p99 ms): $(ratio_with_interval "$dir/plain-$w.runs" "$dir/nginx-$w.runs" 2 "<=" 100)."
}

# Waits up to 10 s for each loopback port to answer GET /hello; fails if one does not.
wait_for_ports() {
    local port
    for port in "$@"; do
        for _ in $(seq 100); do
            curl -fsS "http://127.0.0.1:$port/hello" >/dev/null 2>&1 && break
            sleep 0.1
        done
        curl -fsS "http://127.0.0.1:$port/hello" >/dev/null
    done
}

# binary, config file, worker count -> gwhost serving that config in its own session
# (see bench-gateway.sh on autogroup), its log beside the config; its pid in GWHOST_PID
# (a script's exit trap stops it from there). Call it in the script's own shell (not in
# `$(...)`), so that `stop_gwhost` can wait.
start_gwhost() {
    TOKIO_WORKER_THREADS=$3 RUST_LOG=warn setsid "$1" run -c "$2" >>"${2%.json}.log" 2>&1 &
    GWHOST_PID=$!
}

# -> the gwhost in GWHOST_PID stopped: it drains its connections and exits.
stop_gwhost() {
    kill -TERM "$GWHOST_PID"
    wait "$GWHOST_PID" || true
    GWHOST_PID=""
}

# An nginx config: dir (temp files, error log), pidfile, workers, server blocks.
nginx_conf() {
    cat <<EOF
worker_processes $3;
pid $2;
error_log $1/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1;
    proxy_temp_path $1;
    fastcgi_temp_path $1;
    uwsgi_temp_path $1;
    scgi_temp_path $1;
    keepalive_requests 1000000;
$4
}
EOF
}

# Starts the benchmark backend: an nginx of its own answering a fixed 17-byte JSON body.
# dir (its pid goes to dir.pid), port, workers.
start_backend() {
    mkdir -p "$1"
    nginx_conf "$1" "$1.pid" "$3" "
    server {
        listen 127.0.0.1:$2;
        location / { default_type application/json; return 200 '{\"hello\":\"world\"}'; }
    }" >"$1/backend.conf"
    nginx -c "$1/backend.conf"
}

# A gwhost config proxying /hello to the backend: port, with-plugins (0 or 1: the
# passthrough fixture's server, modifier and client), backend port, plugin folder.
gw_config() {
    local server="" endpoint="" backend=""
    if [[ "$2" == 1 ]]; then
        server=', "extra_config": {"plugin/http-server": {"name": ["pass-server"]}}'
        endpoint=', "extra_config": {"plugin/req-resp-modifier": {"name": ["pass-modifier"]}}'
        backend=', "extra_config": {"plugin/http-client": {"name": "pass-client"}}'
    fi
    cat <<EOF
{"version": 3, "listen_ip": "127.0.0.1", "port": $1,
 "plugin": {"folder": "$4", "pattern": ".so"}$server,
 "endpoints": [{"endpoint": "/hello"$endpoint,
   "backend": [{"host": ["http://127.0.0.1:$3"], "url_pattern": "/hello"$backend}]}]}
EOF
}
