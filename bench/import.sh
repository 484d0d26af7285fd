#!/usr/bin/env bash
# The import against its anchors (issue 13): `plex-pg-launcher import`,
# pgloader and a bare `COPY` loading the same generated library (100,000
# items, plex-sim library generate) into one throwaway PostgreSQL server,
# interleaved round after round; plus the import of a 10,000-item library
# for the per-row cost at both sizes. Prints a Markdown table (also saved
# to <target>/plex-pg-bench/import.md). What it means: docs/benchmarks.md,
# "Import".
#
#   bash bench/import.sh               # 15 rounds, about 10 minutes on 2 cores
#   ROUNDS=3 bash bench/import.sh      # a smoke run
#   ITEMS=20000 bash bench/import.sh   # another library size
#
# pgloader is Debian's package; it is installed with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/plex-pg-bench"

if ! command -v pgloader >/dev/null; then
  echo "== installing pgloader (apt-get)" >&2
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y pgloader >&2
fi

echo "== build (release)" >&2
cargo build --release -p plex-pg-launcher -p plex-pg-import >&2
cargo build --release -p plex-pg-tests --bin plex-sim >&2
cargo build --release -p plex-pg-bench --bin import-bench >&2
mkdir -p "$out"
"$target/release/import-bench" \
  --rounds "${ROUNDS:-15}" \
  --items "${ITEMS:-100000}" \
  --small-items "${SMALL_ITEMS:-10000}" | tee "$out/import.md"
