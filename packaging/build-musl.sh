#!/usr/bin/env bash
# Builds the shim that ships: libplex_pg_shim.so for musl, the C library
# Plex Media Server runs on (a glibc shim cannot load into Plex).
#
#   bash packaging/build-musl.sh
#
# Output: target/<arch>-unknown-linux-musl/release/libplex_pg_shim.so, a
# shared library whose only dependency is musl's libc.so (checked here with
# readelf; the build fails otherwise).
#
# How: see use_musl_target in common.sh (musl-gcc, -crt-static, a
# libgcc_s linker script). The target is the machine's own architecture: an
# aarch64 shim is built by running this script on an arm64 Debian
# (docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
script_name=build-musl
. packaging/common.sh

need readelf binutils
use_musl_target

echo "plex-pg build-musl: building the shim for $triple" >&2
cargo build --release --target "$triple" -p plex-pg-shim --lib

shim="$target_dir/$triple/release/libplex_pg_shim.so"
[ -f "$shim" ] || die "cargo finished but $shim is not there"
needed="$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')"
if [ "$needed" != "libc.so " ]; then
    die "$shim needs [$needed]; it must need musl's libc.so and nothing else (was it linked with glibc's cc?)"
fi
echo "plex-pg build-musl: $shim needs only musl's libc.so" >&2
