#!/usr/bin/env bash
# The README's test command: installs what is missing, builds the release
# artifacts the tests run (the shim, the launcher, plex-sim), then runs every
# test of the workspace against real PostgreSQL servers the tests start.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
echo "== build (release)" >&2
cargo build --release --workspace
echo "== test" >&2
cargo test --release --workspace --no-fail-fast "$@"
