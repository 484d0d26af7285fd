#!/bin/sh
# Puts plex-pg-launcher in front of Plex Media Server inside the s6 service
# script of a Plex Docker image: at image build time (packaging/docker/
# Dockerfile), or at container start by the linuxserver mod
# (packaging/docker-mod/):
#
#   sh insert-launcher.sh RUN_SCRIPT
#
# plexinc/pms-docker (s6-overlay v2): /etc/services.d/plex/run
# linuxserver/plex   (s6-overlay v3): /etc/s6-overlay/s6-rc.d/svc-plex/run
#
# A line that starts Plex's binary (/usr/lib/plexmediaserver/Plex Media
# Server, quoted or with escaped spaces) gets the launcher put in front of
# the binary:
#
#   [exec] s6-setuidgid USER BINARY  ->  [exec] s6-setuidgid USER LAUNCHER -- BINARY
#   [exec] BINARY                    ->  [exec] LAUNCHER -- BINARY
#
# The first is the root branch (the launcher then runs as Plex's user:
# tracing its own descendants needs no capability); the second is
# linuxserver's non-root branch (LSIO_NON_ROOT_USER), where the container
# already runs as Plex's user. Either way it runs under the image's own
# supervision and before any environment the command sets for Plex.
#
# One or two such lines (an image with a non-root branch has both) must
# exist and each must have one of these shapes: if the image's script
# changed shape, this fails with the script shown (and so does the image
# build, or the container's start) rather than guess, and leaves the file
# alone. Running it twice changes nothing. INSERT_LAUNCHER_PATH replaces
# the launcher's path (for tests).
set -eu

launcher="${INSERT_LAUNCHER_PATH:-/usr/bin/plex-pg-launcher}"
if [ $# -ne 1 ]; then
    echo "usage: sh insert-launcher.sh RUN_SCRIPT" >&2
    exit 2
fi
run="$1"
if [ ! -f "$run" ]; then
    echo "insert-launcher: $run does not exist: is this the image it was written for? Pass the path of the s6 service script that starts Plex" >&2
    exit 1
fi
# The binary, as the scripts write it: quoted, or with escaped spaces.
binary='"\{0,1\}/usr/lib/plexmediaserver/Plex\(\\\{0,1\} \)Media\(\\\{0,1\} \)Server'
# What may stand before it on its line.
prefix='^[[:space:]]*\(exec[[:space:]]\{1,\}\)\{0,1\}\(s6-setuidgid[[:space:]]\{1,\}[A-Za-z0-9_.-]\{1,\}[[:space:]]\{1,\}\)\{0,1\}'
code() {
    grep -v '^[[:space:]]*#' "$run" || true
}
refuse() {
    echo "insert-launcher: $1:" >&2
    cat "$run" >&2
    echo "insert-launcher: the image's service script changed; put $launcher -- in front of Plex's command by hand" >&2
    exit 1
}
starts="$(code | grep -c "$binary" || true)"
if [ "$starts" -lt 1 ] || [ "$starts" -gt 2 ]; then
    refuse "expected one or two lines of $run starting Plex Media Server (a root and a non-root branch), found $starts"
fi
known="$(code | grep -c "$prefix$binary" || true)"
done_already="$(code | grep -c "${prefix}$launcher -- $binary" || true)"
if [ "$done_already" = "$starts" ]; then
    echo "insert-launcher: $run already starts Plex through $launcher" >&2
    exit 0
fi
if [ "$known" != "$starts" ] || [ "$done_already" != 0 ]; then
    refuse "of the $starts lines of $run starting Plex Media Server, $known have a known shape ([exec] [s6-setuidgid USER] binary) and $done_already already go through the launcher"
fi
tmp="$run.plex-pg.$$"
sed "/^[[:space:]]*#/!s|\($prefix\)\($binary\)|\1$launcher -- \4|" "$run" >"$tmp"
after="$(grep -v '^[[:space:]]*#' "$tmp" | grep -c "${prefix}$launcher -- $binary" || true)"
if [ "$after" != "$starts" ]; then
    rm -f "$tmp"
    refuse "rewriting $run failed ($after of $starts lines rewritten)"
fi
# Keep the script's owner and mode; replace it in one step.
chmod "$(stat -c %a "$run")" "$tmp"
mv -f "$tmp" "$run"
echo "insert-launcher: $run now starts Plex through $launcher ($starts line(s))" >&2
