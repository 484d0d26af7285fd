#!/usr/bin/env bash
# The January 2026 write-up's test_fork_fix.sh, for people: start PostgreSQL
# (a throwaway cluster), plex-sim (the stand-in for Plex) with the shim
# under the launcher in verify mode, let it fork children without exec
# while its worker streams the incident's 40,000-row hash query, and print
# the log lines the write-up expects, as they happen:
#
#   hash query started   the parent's backend executes the query (server log)
#   fork                 the child is born holding the parent's sockets (launcher)
#   [FORK_CHILD pid]     the child's fork handler emptied its pool (shim's report)
#   [child pid] created its own PostgreSQL connection in pool slot 0 (shim's log)
#   hash query done      the parent's query completed (server log)
#
# then the closing table and a verdict (exit status 0: PASS). About 1.5
# minutes on a 2-core machine, most of it the 40,000-movie fill.
#
#   bash tests/test_fork_fix.sh [--no-build] [demo options, e.g. --items N --duration SECS]
#
# --no-build: use the release build as it is (the tests do).
# PLEX_PG_FORK_HANDLER=0 bash tests/test_fork_fix.sh shows the crash instead.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
args=()
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        *) args+=("$arg") ;;
    esac
done
if [ "$build" = 1 ]; then
    if ! command -v cargo >/dev/null; then
        echo "test_fork_fix: cargo is missing: install a Rust toolchain, then bash packaging/install-deps.sh" >&2
        exit 2
    fi
    echo "== building the release workspace (shim, launcher, plex-sim)" >&2
    cargo build --release --workspace
fi
demo="${CARGO_TARGET_DIR:-target}/release/plex-pg-demo"
if [ ! -x "$demo" ]; then
    echo "test_fork_fix: $demo is missing: run without --no-build, or cargo build --release --workspace" >&2
    exit 2
fi
exec "$demo" --incident "${args[@]}"
