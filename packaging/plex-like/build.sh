#!/usr/bin/env bash
# Lays out a tree shaped like Plex Media Server's install, on musl, for the
# tests that load the musl shim the way Plex would:
#
#   OUT/Plex Media Server      plex-sim, the stand-in for Plex, built for
#                              musl; its program interpreter is the bundled
#                              loader below, as Plex's is
#   OUT/lib/libsqlite3.so      SQLite's amalgamation compiled with musl-gcc,
#                              as Plex bundles its own libsqlite3.so
#   OUT/lib/libc.so, OUT/lib/ld-musl-<arch>.so.1
#                              musl's libc and loader, copied from Debian's
#                              musl package
#
#   bash packaging/plex-like/build.sh [OUT]     (default: target/plex-like)
#
# Plex's start command puts OUT/lib on LD_LIBRARY_PATH; so do the tests.
# The amalgamation comes from the sources of the libsqlite3-sys crate (its
# sqlite3/ folder), fetched with cargo into its registry cache. Each piece
# is rebuilt only when missing or older than what it is made from.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

# The crate whose sources carry the amalgamation (sqlite3/sqlite3.c).
sqlite_crate_version="0.40.0"

script_name=plex-like
. packaging/common.sh

arch="$(uname -m)"
out="${1:-$target_dir/plex-like}"
need musl-gcc musl-tools
musl_libc="/usr/lib/$arch-linux-musl/libc.so"
[ -f "$musl_libc" ] || die "$musl_libc is missing: install Debian's musl package"
mkdir -p "$out/lib"
out="$(cd "$out" && pwd)"

# musl's loader, bundled as Plex bundles it: libc.so is the loader itself.
loader="ld-musl-$arch.so.1"
if [ ! -f "$out/lib/libc.so" ] || [ "$musl_libc" -nt "$out/lib/libc.so" ]; then
    cp "$musl_libc" "$out/lib/libc.so"
fi
ln -sfn libc.so "$out/lib/$loader"

# SQLite's amalgamation, from the libsqlite3-sys crate in cargo's cache.
src="$out/src/libsqlite3-sys-$sqlite_crate_version"
if [ ! -f "$src/sqlite3/sqlite3.c" ]; then
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    find_crate() {
        find "$cargo_home/registry/cache" -name "libsqlite3-sys-$sqlite_crate_version.crate" 2>/dev/null | head -n 1
    }
    crate="$(find_crate)"
    if [ -z "$crate" ]; then
        echo "plex-pg plex-like: fetching libsqlite3-sys $sqlite_crate_version with cargo" >&2
        manifest_dir="$(mktemp -d)"
        trap 'rm -rf "$manifest_dir"' EXIT
        mkdir "$manifest_dir/src"
        : > "$manifest_dir/src/lib.rs"
        cat > "$manifest_dir/Cargo.toml" <<EOF
[package]
name = "plex-pg-fetch-sqlite"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
libsqlite3-sys = { version = "=$sqlite_crate_version", default-features = false }
EOF
        timeout 300 cargo fetch --manifest-path "$manifest_dir/Cargo.toml" >&2 \
            || die "cargo could not fetch libsqlite3-sys $sqlite_crate_version (is crates.io reachable?)"
        crate="$(find_crate)"
        [ -n "$crate" ] || die "cargo fetched libsqlite3-sys but its .crate file is not under $cargo_home/registry/cache"
    fi
    mkdir -p "$out/src"
    tar -xzf "$crate" -C "$out/src" \
        "libsqlite3-sys-$sqlite_crate_version/sqlite3/sqlite3.c" \
        "libsqlite3-sys-$sqlite_crate_version/sqlite3/sqlite3.h" \
        || die "$crate has no sqlite3/sqlite3.c"
fi

# -Bsymbolic binds SQLite's calls to its own API functions inside the
# library. Without it, SQLite's internal calls (sqlite3_exec while it
# reads a new connection's schema, for one) go through the PLT to the
# shim's exports, and the shim, re-entered on a handle it is preparing,
# deadlocks on its own lock: a shim bug (it must pass calls made from
# within the real SQLite straight through), reported to its owner. Drop
# this flag once the shim handles it: Plex's own build may bind either way.
if [ ! -f "$out/lib/libsqlite3.so" ] || [ "$0" -nt "$out/lib/libsqlite3.so" ]; then
    echo "plex-pg plex-like: compiling SQLite with musl-gcc" >&2
    musl-gcc -shared -fPIC -O1 \
        -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_FTS4 -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_COLUMN_METADATA \
        -Wl,-Bsymbolic -Wl,-soname,libsqlite3.so \
        -o "$out/lib/libsqlite3.so.tmp" "$src/sqlite3/sqlite3.c" -lpthread -lm
    mv "$out/lib/libsqlite3.so.tmp" "$out/lib/libsqlite3.so"
fi

# plex-sim, the stand-in for Plex (tests/src/bin/plex-sim), built for musl
# with the flags every musl build here uses, linked against the libsqlite3.so
# above, and given the bundled loader as its program interpreter (only the
# final link differs, so the dependencies' builds are shared with the shim's).
use_musl_target
cp "$out/lib/libsqlite3.so" "$support/libsqlite3.so"
echo "plex-pg plex-like: building plex-sim for $triple" >&2
cargo rustc --release --target "$triple" -p plex-pg-tests --bin plex-sim -- \
    -C "link-arg=-Wl,--dynamic-linker=$out/lib/$loader"
cp "$target_dir/$triple/release/plex-sim" "$out/Plex Media Server.tmp"
mv "$out/Plex Media Server.tmp" "$out/Plex Media Server"
echo "plex-pg plex-like: ready in $out" >&2
