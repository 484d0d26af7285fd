#!/usr/bin/env bash
# plex-pg's demo, in about a minute: installs what is missing, builds the
# release workspace, then runs `plex-pg-demo`: plex-sim (a
# stand-in for Plex Media Server) on a throwaway PostgreSQL, through the
# shim, under the launcher in verify mode, with live progress and a closing
# table of what was checked. Nothing is left running afterwards.
#
# Arguments go to the demo: bash demo.sh --help lists them (e.g. --items,
# --duration, --work-dir DIR to keep the event log and logs, --incident for
# the January 2026 crash's log lines).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null; then
    echo "plex-pg demo: cargo is missing: install a Rust toolchain (rustup) first" >&2
    exit 2
fi
bash packaging/install-deps.sh
echo "== building the release workspace (shim, launcher, plex-sim)" >&2
cargo build --release --workspace
exec "${CARGO_TARGET_DIR:-target}/release/plex-pg-demo" "$@"
