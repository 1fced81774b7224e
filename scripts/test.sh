#!/usr/bin/env bash
# Runs everything CI runs — rustfmt, clippy, the tests — after installing what the
# tests need on a fresh Debian machine: the musl and aarch64 Rust targets, musl-gcc, the
# aarch64 cross linker and qemu-user (the tests build and run real musl and aarch64
# gateways and plugins). All plugin builds made by the tests share one CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-gnu"
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-gnu
# A plugin built by another compiler must be refused: the tests build one with nightly.
if ! rustup run nightly rustc -V >/dev/null 2>&1; then
    echo "==> rustup toolchain install nightly --profile minimal"
    rustup toolchain install nightly --profile minimal
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Disk: the plugin crates the tests build are workspaces of their own, so the workspace's
# [profile.dev] does not reach them; these do. Incremental state is never reused on CI.
export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
# A full run leaves ~2.4 GB in the target dir (measured on a fresh clone). Said up front,
# so that running out of disk is not mistaken for a failing test.
mkdir -p "$CARGO_TARGET_DIR"
free_kb="$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')"
if [ "${free_kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
    echo "warning: only $((free_kb / 1024)) MB free for \`$CARGO_TARGET_DIR\`; a full test run needs about 2.5 GB" >&2
    echo "help: free some disk, or point CARGO_TARGET_DIR at a roomier file system" >&2
fi
echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
