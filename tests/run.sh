#!/usr/bin/env bash
# The README's test command: installs what is missing, checks formatting
# (rustfmt) and lints (clippy, warnings are errors), builds the release
# artifacts the tests run (the shim, the launcher, plex-sim), then runs every
# test of the workspace against real PostgreSQL servers the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
echo "== rustfmt" >&2
cargo fmt --all --check
echo "== clippy" >&2
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== build (release)" >&2
cargo build --release --workspace
echo "== test" >&2
cargo test --release --workspace --no-fail-fast "$@"
