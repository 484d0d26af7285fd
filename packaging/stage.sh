#!/usr/bin/env bash
# Installs plex-pg's runtime files, as they are laid out on a system, into a
# staging directory: the .deb (packaging/build-deb.sh) and the Docker images
# (packaging/docker/*/Dockerfile) are both made from it.
#
#   bash packaging/stage.sh DESTDIR
#
#   DESTDIR/usr/bin/plex-pg-launcher                 target/release, stripped
#   DESTDIR/usr/bin/plex-pg-import                   target/release, stripped
#                                                    (plex-pg-launcher import runs it)
#   DESTDIR/usr/lib/plex-pg/libplex_pg_shim.so        the musl build, stripped
#   DESTDIR/usr/share/doc/plex-pg/*.md                README and docs/
#
# All must be built already: cargo build --release -p plex-pg-launcher
# -p plex-pg-import, and bash packaging/build-musl.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
script_name=stage
. packaging/common.sh

[ $# -eq 1 ] || die "usage: bash packaging/stage.sh DESTDIR"
dest="$1"
need strip binutils
launcher="$target_dir/release/plex-pg-launcher"
shim="$target_dir/$(uname -m)-unknown-linux-musl/release/libplex_pg_shim.so"
import="$target_dir/release/plex-pg-import"
[ -x "$launcher" ] || die "$launcher is missing: run cargo build --release -p plex-pg-launcher"
[ -x "$import" ] || die "$import is missing: run cargo build --release -p plex-pg-import"
[ -f "$shim" ] || die "$shim is missing: run bash packaging/build-musl.sh"

install -d -m 0755 "$dest/usr/bin" "$dest/usr/lib/plex-pg" "$dest/usr/share/doc/plex-pg"
install -m 0755 "$launcher" "$dest/usr/bin/plex-pg-launcher"
strip --remove-section=.comment --remove-section=.note "$dest/usr/bin/plex-pg-launcher"
install -m 0755 "$import" "$dest/usr/bin/plex-pg-import"
strip --remove-section=.comment --remove-section=.note "$dest/usr/bin/plex-pg-import"
# A shared library is not executable (Debian policy 10.2).
install -m 0644 "$shim" "$dest/usr/lib/plex-pg/libplex_pg_shim.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$dest/usr/lib/plex-pg/libplex_pg_shim.so"

install -m 0644 README.md "$dest/usr/share/doc/plex-pg/README.md"
# Every document: install.md promises them all (and links between them).
for doc in docs/*.md; do
    install -m 0644 "$doc" "$dest/usr/share/doc/plex-pg/$(basename "$doc")"
done
