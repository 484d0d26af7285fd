#!/usr/bin/env bash
# The README's test command: installs what is missing, checks formatting
# (rustfmt) and lints (clippy, warnings are errors), checks that the
# launcher builds for aarch64, builds the release
# artifacts the tests run (the shim, the launcher, plex-sim), runs the fork
# tests over the shim's fork-audit build (docs/architecture.md), then runs every
# test of the workspace against real PostgreSQL servers the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
echo "== rustfmt" >&2
cargo fmt --all --check
echo "== clippy" >&2
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== aarch64 (cargo check of the launcher, its configuration and the shim)" >&2
# ring's build script compiles C for the target: it needs aarch64-linux-gnu-gcc
# (Debian's gcc-aarch64-linux-gnu).
if ! rustup target add aarch64-unknown-linux-gnu >&2; then
    echo "SKIPPED: the aarch64-unknown-linux-gnu target cannot be installed (rustup target add failed); the aarch64 build is not checked" >&2
elif ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "SKIPPED: aarch64-linux-gnu-gcc is missing (apt-get install gcc-aarch64-linux-gnu); the aarch64 build is not checked" >&2
else
    cargo check --release --target aarch64-unknown-linux-gnu -p plex-pg-launcher -p plex-pg-config -p plex-pg-shim
fi
echo "== build (release)" >&2
cargo build --release --workspace
echo "== fork tests over the fork-audit shim (an allocation or a lock in the child's fork handler aborts)" >&2
cargo build --profile fork-audit -p plex-pg-shim --features plex-pg-shim/fork-audit
target_dir="${CARGO_TARGET_DIR:-target}"
PLEX_PG_TEST_SHIM="$(cd "$target_dir" && pwd)/fork-audit/libplex_pg_shim.so" \
    cargo test --release -p plex-pg-tests --test shim_fork
echo "== test" >&2
cargo test --release --workspace --no-fail-fast "$@"
