#!/usr/bin/env bash
# What supervision costs on fork-heavy work (issue 19): bench/fork_shape.py
# (a streamed query with a fork in the middle, a fork+exec of /bin/true and
# an update, 100 rounds a run) under no shim, the shim alone (the baseline)
# and the launcher in every mode, interleaved round after round against one
# throwaway PostgreSQL server. Prints a Markdown table (also saved to
# <target>/plex-pg-bench/fork-shape.md). What it means: docs/benchmarks.md,
# "Fork-heavy work".
#
#   bash bench/fork-shape.sh              # 15 rounds, about 5 minutes on 2 cores
#   ROUNDS=3 bash bench/fork-shape.sh     # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/plex-pg-bench"

echo "== build (release)" >&2
cargo build --release -p plex-pg-launcher -p plex-pg-shim -p plex-pg-bench >&2
mkdir -p "$out"
"$target/release/fork-shape-bench" \
  --rounds "${ROUNDS:-15}" \
  --shape-rounds "${SHAPE_ROUNDS:-100}" | tee "$out/fork-shape.md"
