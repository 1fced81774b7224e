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
# "name requests/s p99 ..." -> NAME.runs without the name, in file order.
cat "$@" | awk -v dir="$POOL" 'NF > 1 {name = $1; $1 = ""; sub(/^ /, ""); print > (dir "/" name ".runs")}'

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
