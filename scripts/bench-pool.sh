#!/usr/bin/env bash
# Pools runs of scripts/bench-gateway.sh from their BENCH_LOG files: issue 3's targets
# over all their rounds, with 95% intervals, as bench-gateway.sh prints them for one run.
# One run's intervals cover only the minutes it ran in; pooling runs of one build from
# different times covers more of this shared machine's moods.
#
#   scripts/bench-pool.sh bench-logs/run-I.log bench-logs/run-J.log bench-logs/run-K.log
#
# Rounds stay whole: each file holds one line per configuration and round, so the n-th
# plain, plugins and nginx lines of the pooled files are the same round's. A worker count
# is reported when all three configurations ran at it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
[[ $# -ge 1 ]] || { echo "usage: scripts/bench-pool.sh BENCH_LOG..." >&2; exit 2; }
for log in "$@"; do
    [[ -f "$log" ]] || { echo "error: \`$log\` is not a file" >&2; exit 2; }
done

POOL="$(mktemp -d /tmp/gwhost-pool.XXXXXX)"
trap 'rm -rf "$POOL"' EXIT
command -v python3 >/dev/null || { echo "error: \`python3\` is needed for the intervals" >&2; exit 1; }
# Each file: "name requests/s p99 user system preemptions idle" lines, whole rounds only
# (at each worker count, as many plain as plugins as nginx lines), else pooling would
# pair one round's configurations with another's. Then NAME.runs without the name, in
# file order.
for log in "$@"; do
    awk -v file="$log" '
        NF == 0 { next }
        NF != 7 || $1 !~ /^(plain|plugins|nginx)-[0-9]+$/ {
            printf "error: `%s` line %d is not a `BENCH_LOG` line: %s\n", file, FNR, $0; bad = 1; exit 1
        }
        { split($1, part, "-"); count[part[2] " " part[1]]++; seen[part[2]] = 1 }
        END {
            if (bad) exit 1
            for (w in seen) {
                n = count[w " plain"] + 0
                if (count[w " plugins"] + 0 != n || count[w " nginx"] + 0 != n) {
                    printf "error: `%s` has partial rounds at %s worker(s): %d plain, %d plugins, %d nginx lines\n", \
                        file, w, n, count[w " plugins"], count[w " nginx"]
                    exit 1
                }
            }
        }' "$log" >&2 || exit 1
done
cat "$@" | awk -v dir="$POOL" 'NF == 7 {name = $1; $1 = ""; sub(/^ /, ""); print > (dir "/" name ".runs")}'

echo "$# run(s): $*"
found=0
for w in $(find "$POOL" -name 'plain-*.runs' | sed 's/.*plain-\(.*\)\.runs$/\1/' | sort -n); do
    [[ -f "$POOL/plugins-$w.runs" && -f "$POOL/nginx-$w.runs" ]] || continue
    found=1
    echo
    echo "$w worker(s), $(wc -l <"$POOL/plain-$w.runs") rounds; medians of requests/s: plain $(median "$POOL/plain-$w.runs" 1), 3 plugins $(median "$POOL/plugins-$w.runs" 1), nginx $(median "$POOL/nginx-$w.runs" 1)"
    gateway_targets "$POOL" "$w"
done
((found)) || { echo "error: no worker count with plain, plugins and nginx rounds in these logs" >&2; exit 1; }
