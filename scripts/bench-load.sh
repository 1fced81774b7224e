#!/usr/bin/env bash
# What loading one plugin adds to gwhost's start-up: `gwhost check` (parse the config,
# verify, load and register every plugin, without serving) with no plugin, with a 0.5 MB
# release plugin and with an 8.6 MB debug plugin (with and without its sha256 configured),
# side by side in one hyperfine run. Whole processes: each load happens in a fresh
# process, as at a real start-up.
#
# Needs: hyperfine (apt-get install hyperfine). Usage: scripts/bench-load.sh [hyperfine args…]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
command -v hyperfine >/dev/null || { echo "error: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 2; }

cd "$REPO"
cargo build -q --release -p gwhost
cargo build -q --release -p fixture-all-kinds
cargo build -q -p fixture-all-kinds
GWHOST="$CARGO_TARGET_DIR/release/gwhost"
WORK="$(mktemp -d /tmp/gwplugin-bench-load.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/none" "$WORK/release" "$WORK/debug"
cp "$CARGO_TARGET_DIR/release/libfixture_all_kinds.so" "$WORK/release/all-kinds.so"
cp "$CARGO_TARGET_DIR/debug/libfixture_all_kinds.so" "$WORK/debug/all-kinds.so"
config() { # folder, sha256 or ""
  local sums=""
  [ -n "$2" ] && sums=", \"sha256\": {\"all-kinds.so\": \"$2\"}"
  cat <<JSON
{"version": 3, "port": 18999, "plugin": {"folder": "$1", "pattern": ".so"$sums},
 "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://127.0.0.1:1"], "url_pattern": "/"}]}]}
JSON
}
config "$WORK/none" "" > "$WORK/none.json"
config "$WORK/release" "" > "$WORK/release.json"
config "$WORK/debug" "" > "$WORK/debug.json"
config "$WORK/debug" "$(sha256sum "$WORK/debug/all-kinds.so" | cut -d' ' -f1)" > "$WORK/debug-sha.json"
ls -l "$WORK"/release/*.so "$WORK"/debug/*.so >&2
hyperfine -N --warmup 5 --min-runs 40 --export-markdown /tmp/bench-load.md "$@" \
  -n 'no plugin' "$GWHOST check -c $WORK/none.json" \
  -n '0.5 MB release plugin' "$GWHOST check -c $WORK/release.json" \
  -n '8.6 MB debug plugin' "$GWHOST check -c $WORK/debug.json" \
  -n '8.6 MB debug plugin + sha256' "$GWHOST check -c $WORK/debug-sha.json"
