#!/usr/bin/env bash
# Runs plex-pg's benchmarks on this machine, in one go, and prints a table
# of ratios. Each comparison runs its two sides side by side in one
# process against one PostgreSQL server, so machine noise hits both alike:
# read the ratios, not the absolute times.
#
#   bash bench/run.sh            # everything
#   QUICK=1 bash bench/run.sh    # shorter measurement windows
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ "${QUICK:-}" = 1 ]; then window=(--warm-up-time 1 --measurement-time 3); else window=(--warm-up-time 2 --measurement-time 8); fi

echo "== build (release)" >&2
cargo build --release --workspace >&2
cargo bench --no-run -p plex-pg-bench >&2

echo "== the shim against the postgres crate (criterion)" >&2
cargo bench -q -p plex-pg-bench --bench shim_vs_postgres -- "${window[@]}" >&2

echo "== the child's fork handler" >&2
handler=$("$target/release/fork-handler-bench")

python3 - "$target/criterion" <<'PY'
import json, sys, os
root = sys.argv[1]
def median(group, fn):
    with open(os.path.join(root, group, fn, "new", "estimates.json")) as f:
        e = json.load(f)["median"]
    return e["point_estimate"], e["confidence_interval"]["lower_bound"], e["confidence_interval"]["upper_bound"]
def fmt(ns):
    return f"{ns/1e6:.2f} ms" if ns >= 1e6 else f"{ns/1e3:.1f} µs"
print()
print(f"{'comparison':<22} {'shim (median, 95% CI)':<30} {'postgres crate':<30} {'ratio':>6}  target")
targets = {"point_select": 1.10, "insert": None, "hash_scan_40k": 1.05}
for group, target in targets.items():
    s = median(group, "shim"); p = median(group, "postgres")
    ratio = s[0] / p[0]
    verdict = "" if target is None else (f"≤ {target:.2f} {'met' if ratio <= target else 'MISSED'}")
    print(f"{group:<22} {fmt(s[0]):>9} [{fmt(s[1])}, {fmt(s[2])}]   {fmt(p[0]):>9} [{fmt(p[1])}, {fmt(p[2])}]   {ratio:5.2f}×  {verdict}")
PY
echo
echo "fork handler in the child:"
echo "$handler"
