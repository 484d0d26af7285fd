#!/usr/bin/env bash
# Builds plex-pg's linuxserver mod: an image FROM scratch that the
# linuxserver/plex container copies onto itself at start when it is named
# in DOCKER_MODS (docs/install.md, "linuxserver: the Docker mod"). It holds
# the launcher, the musl shim, insert-launcher.sh and an s6-rc oneshot
# (init-mod-plex-pg-launcher) that puts the launcher in front of Plex before
# Plex's service starts.
#
#   bash packaging/docker-mod/build.sh TAG
#       docker build --target mod of packaging/docker/Dockerfile (the same
#       build stage as the images), tagged TAG
#   bash packaging/docker-mod/build.sh --tree STAGE OUT
#       the mod's files as a directory tree in OUT, from STAGE (the output
#       of packaging/stage.sh), without Docker: what the image holds
set -euo pipefail
cd "$(dirname "$0")/../.."
script_name=docker-mod
. packaging/common.sh

tree() {
    local stage="$1" out="$2"
    [ -x "$stage/usr/bin/plex-pg-launcher" ] || die "$stage/usr/bin/plex-pg-launcher is missing: run bash packaging/stage.sh $stage first"
    [ -f "$stage/usr/lib/plex-pg/libplex_pg_shim.so" ] || die "$stage/usr/lib/plex-pg/libplex_pg_shim.so is missing: run bash packaging/stage.sh $stage first"
    [ ! -e "$out" ] || die "$out exists: give a new directory"
    mkdir -p "$out"
    cp -a "$stage/." "$out/"
    install -D -m 0755 packaging/docker/insert-launcher.sh "$out/usr/lib/plex-pg/insert-launcher.sh"
    cp -a packaging/docker-mod/root/. "$out/"
}

case "${1:-}" in
    --tree)
        [ $# -eq 3 ] || die "usage: bash packaging/docker-mod/build.sh --tree STAGE OUT"
        tree "$2" "$3"
        echo "docker-mod: the mod's files are in $3" >&2
        ;;
    ""|-*)
        die "usage: bash packaging/docker-mod/build.sh TAG | --tree STAGE OUT"
        ;;
    *)
        need docker docker.io
        docker build --target mod -f packaging/docker/Dockerfile -t "$1" .
        echo "docker-mod: built $1; add it to DOCKER_MODS of a linuxserver/plex container" >&2
        ;;
esac
