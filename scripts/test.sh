#!/usr/bin/env bash
# Runs everything CI runs — rustfmt, clippy, the tests — after installing what the
# tests need on a fresh Debian machine: the musl target and musl-gcc (for the musl
# plugin builds). All plugin builds made by the tests share one CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> rustup target add x86_64-unknown-linux-musl"
rustup target add x86_64-unknown-linux-musl

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
