#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing plex-pg needs
# and is not there yet: PostgreSQL (initdb, pg_ctl, psql), SQLite's library,
# headers and command-line shell. Does nothing when all is present.
set -euo pipefail

need=()
for pkg in postgresql libsqlite3-dev sqlite3 python3; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "plex-pg: installing ${need[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "plex-pg: run as root, or install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# The package's own cluster is not used (tests start throwaway ones): do not
# let the install create and start one.
mkdir -p /etc/postgresql-common
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
apt-get install -y -q --no-install-recommends "${need[@]}"
