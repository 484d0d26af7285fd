#!/usr/bin/env bash
# Runs plex-pg's benchmarks on this machine, in one go, and prints one
# table of medians, spreads and ratios (Markdown; also saved to
# <target>/plex-pg-bench/table.md). Every comparison runs its variants
# side by side against one PostgreSQL server, interleaved round after
# round, so machine noise falls on all of them alike: read the ratios,
# not the absolute times. What each figure means: docs/benchmarks.md.
#
#   bash bench/run.sh            # everything, about 20 minutes on 2 cores
#   QUICK=1 bash bench/run.sh    # fewer rounds, shorter windows (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/plex-pg-bench"

if [ "${QUICK:-}" = 1 ]; then
  window=(--warm-up-time 1 --measurement-time 3)
  supervision=(--rounds 2 --iterations 60 --fork-rounds 2 --forks 500)
  concurrency=(--rounds 2 --seconds 5)
  writes=(--rounds 3 --seconds 4 --scenario-rounds 1)
else
  window=(--warm-up-time 2 --measurement-time 8)
  supervision=(--rounds 5 --iterations 200 --fork-rounds 5 --forks 1000)
  concurrency=(--rounds 3 --seconds 10)
  writes=(--rounds 15 --seconds 10 --scenario-rounds 3)
fi

echo "== build (release)" >&2
cargo build --release --workspace >&2
cargo bench --no-run -p plex-pg-bench -p plex-pg-shim >&2
# Figures of an earlier run must not pass for this one's (criterion's are
# rewritten by each run; a failing step stops the script before the table).
rm -rf "$out"
mkdir -p "$out"
cat /proc/loadavg > "$out/load-start.txt"
started=$(date +%s)

echo "== the shim against the postgres crate (criterion)" >&2
cargo bench -q -p plex-pg-bench --bench shim_vs_postgres -- "${window[@]}" >&2

echo "== translation over Plex's fixtures (criterion)" >&2
cargo bench -q -p plex-pg-shim --bench translate -- "${window[@]}" --sample-size 30 >&2

echo "== the child's fork handler" >&2
"$target/release/fork-handler-bench" >&2

echo "== supervision: plex-sim and fork latency under every launcher mode" >&2
"$target/release/supervision-bench" "${supervision[@]}"

echo "== SQLite against the shim under concurrency" >&2
"$target/release/concurrency-bench" "${concurrency[@]}"

echo "== writes: bulk loads, a scan during playback, two scanners, subtransactions" >&2
"$target/release/writes-bench" "${writes[@]}" >&2

echo "== done in $(( $(date +%s) - started )) s (build not counted)" >&2
"$target/release/bench-table" | tee "$out/table.md"
