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
# How: the musl target with `-C target-feature=-crt-static` (a cdylib needs
# dynamic linking), linked by musl-gcc (Debian's musl-tools; the default cc
# would silently link glibc), plus a `libgcc_s.so` linker script pointing at
# the Rust toolchain's self-contained libunwind.a, since musl has no
# libgcc_s. The target is the machine's own architecture: an aarch64 shim is
# built by running this script on an arm64 Debian (docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
script_name=build-musl
. packaging/common.sh

arch="$(uname -m)"
triple="$arch-unknown-linux-musl"
need musl-gcc musl-tools
need readelf binutils
sysroot="$(rustc --print sysroot)"
unwind="$sysroot/lib/rustlib/$triple/lib/self-contained/libunwind.a"
[ -f "$unwind" ] || die "the Rust target $triple is not installed ($unwind is missing): run rustup target add $triple"

# musl-gcc links -lgcc_s for Rust's unwinder; musl has none, so point the
# name at the self-contained libunwind.a.
support="$target_dir/musl-support"
mkdir -p "$support"
for name in libgcc_s.so libgcc_s.so.1; do
    printf 'INPUT(%s)\n' "$unwind" > "$support/$name.tmp"
    mv "$support/$name.tmp" "$support/$name"
done
support_abs="$(cd "$support" && pwd)"

triple_var="$(echo "$triple" | tr 'a-z-' 'A-Z_')"
export "CARGO_TARGET_${triple_var}_LINKER=musl-gcc"
export "CARGO_TARGET_${triple_var}_RUSTFLAGS=-C target-feature=-crt-static -L native=$support_abs"

echo "plex-pg build-musl: building the shim for $triple" >&2
cargo build --release --target "$triple" -p plex-pg-shim --lib

shim="$target_dir/$triple/release/libplex_pg_shim.so"
[ -f "$shim" ] || die "cargo finished but $shim is not there"
needed="$(readelf -d "$shim" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')"
if [ "$needed" != "libc.so " ]; then
    die "$shim needs [$needed]; it must need musl's libc.so and nothing else (was it linked with glibc's cc?)"
fi
echo "plex-pg build-musl: $shim needs only musl's libc.so" >&2
