#!/bin/sh
# Puts plex-pg-launcher in front of Plex Media Server inside the s6 service
# script of a Plex Docker image, at image build time:
#
#   sh insert-launcher.sh RUN_SCRIPT
#
# plexinc/pms-docker (s6-overlay v2): /etc/services.d/plex/run
# linuxserver/plex   (s6-overlay v3): /etc/s6-overlay/s6-rc.d/svc-plex/run
#
# The line that starts Plex as its user, `s6-setuidgid USER <command>`,
# becomes `s6-setuidgid USER /usr/bin/plex-pg-launcher -- <command>`: the
# launcher runs as Plex's user (tracing its own descendants needs no
# capability), under the image's own supervision, and before any
# LD_LIBRARY_PATH the command sets for Plex's bundled libraries. Exactly one
# such line must exist: if the image's script changed shape, this fails
# (and so does the image build) rather than guess. Running it twice changes
# nothing.
set -eu

launcher=/usr/bin/plex-pg-launcher
if [ $# -ne 1 ]; then
    echo "usage: sh insert-launcher.sh RUN_SCRIPT" >&2
    exit 2
fi
run="$1"
if [ ! -f "$run" ]; then
    echo "insert-launcher: $run does not exist: is this the image it was written for? Pass the path of the s6 service script that starts Plex" >&2
    exit 1
fi
code() {
    grep -v '^[[:space:]]*#' "$run"
}
if code | grep -q "s6-setuidgid [A-Za-z0-9_.-]* $launcher -- "; then
    echo "insert-launcher: $run already starts Plex through $launcher" >&2
    exit 0
fi
pattern='s6-setuidgid [A-Za-z0-9_.-]* .*Plex[\\ ]*Media[\\ ]*Server'
found="$(code | grep -c "$pattern" || true)"
if [ "$found" != 1 ]; then
    echo "insert-launcher: expected exactly one line of $run starting Plex Media Server with s6-setuidgid, found $found:" >&2
    cat "$run" >&2
    echo "insert-launcher: the image's service script changed; put $launcher -- in front of Plex's command by hand" >&2
    exit 1
fi
sed -i "/^[[:space:]]*#/!s|\(s6-setuidgid [A-Za-z0-9_.-]*\) \(.*Plex[\\\\ ]*Media[\\\\ ]*Server\)|\1 $launcher -- \2|" "$run"
if ! code | grep -q "s6-setuidgid [A-Za-z0-9_.-]* $launcher -- "; then
    echo "insert-launcher: rewriting $run failed" >&2
    exit 1
fi
echo "insert-launcher: $run now starts Plex through $launcher" >&2
