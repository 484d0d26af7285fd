#!/usr/bin/env bash
# The differential SQL fuzzer's long run (docs/fuzzing.md): COUNT units of
# random statements generated from SEED, run on real SQLite and through
# the shim (on a throwaway PostgreSQL this run starts and stops, or the one
# PLEX_PG_TEST_SOCKET_DIR and PLEX_PG_TEST_PORT name), then a summary:
# statements, agreed, differences by class (known ones by name), and each
# new difference with its seed and index to replay it. Exits 1 when a new
# difference was found.
#
#   bash bench/fuzz-sql.sh              # seed 1, 2000 units
#   bash bench/fuzz-sql.sh 42 10000     # any seed, any count
#   bash bench/fuzz-sql.sh 42 10000 --emit run.test   # the run as a case file
#   bash bench/fuzz-sql.sh --case run.test            # a case file, both ways
#
# Paths are relative to the directory it is run from.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

# The shim under test is the release build: build it with the fuzzer.
cargo build --release --manifest-path "$root/Cargo.toml" \
  -p plex-pg-shim -p plex-pg-tests --bin sql-fuzz >&2
if [ "$#" -eq 0 ]; then
  set -- 1 2000
fi
exec "$target/release/sql-fuzz" "$@"
