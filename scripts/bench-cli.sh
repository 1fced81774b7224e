#!/usr/bin/env bash
# Benchmarks `cargo gwplugin check` and `sync` (already in sync) against bare
# `cargo metadata --offline` on the same plugin crate, whose lock has 300+ packages.
# Whole-process timings, side by side in one hyperfine run.
#
# Needs: hyperfine (apt-get install hyperfine), network once (to fetch the plugin's
# private dependencies), and the repository's toolchain.
# Usage: scripts/bench-cli.sh [hyperfine args…]   (writes /tmp/bench-cli.md)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
command -v hyperfine >/dev/null || { echo "error: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 2; }

cargo build --release -p cargo-gwplugin -p gwhost --manifest-path "$REPO/Cargo.toml" >&2
CGP="$CARGO_TARGET_DIR/release/cargo-gwplugin"
HOST="$CARGO_TARGET_DIR/release/gwhost"

WORK="$(mktemp -d /tmp/gwplugin-bench-cli.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$CGP" gwplugin new big-plugin --kind modifier --host "$HOST" >/dev/null 2>&1 \
  || "$CGP" gwplugin new big-plugin --kind modifier --host "$REPO/gateway" >/dev/null
cd big-plugin
# Private dependencies: a realistic service plugin with a 300+ package lock.
python3 - <<'PY'
s = open("Cargo.toml").read()
s = s.replace("[build-dependencies]", '''reqwest = { version = "0.12", features = ["json", "rustls-tls"] }
axum = "0.8"
sqlx = { version = "0.8", features = ["runtime-tokio", "postgres", "mysql", "sqlite"] }
tonic = "0.14"
tracing-subscriber = { version = "0.3", features = ["env-filter", "json"] }
clap = { version = "4", features = ["derive"] }
chrono = "0.4"
regex = "1"
tokio = { version = "1", features = ["full"] }

[build-dependencies]''')
open("Cargo.toml", "w").write(s)
PY
"$CGP" gwplugin sync --host "$HOST" >/dev/null 2>&1
cargo metadata --format-version 1 >/dev/null 2>&1   # download every package's manifest once
PACKAGES="$(grep -c '^name = ' Cargo.lock)"
echo "plugin lock: $PACKAGES packages; host: $HOST" >&2

# `check` exits 1 here (sqlx turns on serde_json's raw_value: a real incompatibility),
# hence -i.
hyperfine -N -i --warmup 3 --min-runs 20 --export-markdown /tmp/bench-cli.md "$@" \
  -n 'cargo metadata --offline' "cargo metadata --offline --format-version 1" \
  -n 'cargo gwplugin check (host binary)' "$CGP gwplugin check --host $HOST" \
  -n 'cargo gwplugin sync, in sync (host binary)' "$CGP gwplugin sync --host $HOST" \
  -n 'cargo gwplugin check (host project)' "$CGP gwplugin check --host $REPO/gateway"
echo "packages in the plugin's lock: $PACKAGES"

# `cargo gwplugin build` on an up-to-date plugin against `cargo build` of the same
# (same target, so the same artifacts): the overhead of the host check, the artifact
# verification, the copy and the registration snippet.
cd "$WORK"
"$CGP" gwplugin new small-plugin --kind modifier --host "$REPO/gateway" >/dev/null 2>&1
cd small-plugin
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
"$CGP" gwplugin build --host "$HOST" --target "$TRIPLE" >/dev/null 2>&1
# Both through cargo, as users run them (`cargo gwplugin` is cargo running cargo-gwplugin).
export PATH="$(dirname "$CGP"):$PATH"
for profile in "" "--release"; do
  "$CGP" gwplugin build $profile --host "$HOST" --target "$TRIPLE" >/dev/null 2>&1
  hyperfine -N --warmup 3 --min-runs 20 --export-markdown "/tmp/bench-build${profile}.md" "$@" \
    -n "cargo build $profile (up to date)" "cargo build $profile --lib --target $TRIPLE" \
    -n "cargo gwplugin build $profile (up to date)" "cargo gwplugin build $profile --host $HOST --target $TRIPLE"
done
