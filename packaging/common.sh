# Sourced by the packaging scripts (after cd to the workspace root, with
# $script_name set): an error exit that names the script, a tool check that
# names the Debian package to install, and the cargo target directory.

die() {
    echo "plex-pg $script_name: $*" >&2
    exit 1
}

# need TOOL PACKAGE: stop unless TOOL is on PATH.
need() {
    command -v "$1" >/dev/null \
        || die "$1 is missing: install Debian's $2 (bash packaging/install-deps.sh does, as root)"
}

target_dir="${CARGO_TARGET_DIR:-target}"

# use_musl_target: set $triple and $support, and export what cargo needs to
# build for musl on this machine's architecture: musl-gcc as the linker
# (the default cc would silently link glibc), -crt-static (a cdylib, and
# programs that load shared libraries, must link dynamically), and
# $support on the library path, where a `libgcc_s.so` linker script points
# at the Rust toolchain's self-contained libunwind.a (musl has no libgcc_s).
# Every musl build uses exactly these flags, so they share their
# dependencies' builds.
use_musl_target() {
    need musl-gcc musl-tools
    triple="$(uname -m)-unknown-linux-musl"
    local unwind
    unwind="$(rustc --print sysroot)/lib/rustlib/$triple/lib/self-contained/libunwind.a"
    [ -f "$unwind" ] || die "the Rust target $triple is not installed ($unwind is missing): run rustup target add $triple"
    support="$target_dir/musl-support"
    mkdir -p "$support"
    for name in libgcc_s.so libgcc_s.so.1; do
        printf 'INPUT(%s)\n' "$unwind" > "$support/$name.tmp"
        mv "$support/$name.tmp" "$support/$name"
    done
    local support_abs triple_var
    support_abs="$(cd "$support" && pwd)"
    triple_var="$(echo "$triple" | tr 'a-z-' 'A-Z_')"
    export "CARGO_TARGET_${triple_var}_LINKER=musl-gcc"
    export "CARGO_TARGET_${triple_var}_RUSTFLAGS=-C target-feature=-crt-static -L native=$support_abs"
}
