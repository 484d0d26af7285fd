#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing plex-pg needs
# and is not there yet, and the Rust target for the shim that ships:
#   - PostgreSQL (initdb, pg_ctl, psql), SQLite's library, headers and shell,
#     python3 (and python3-yaml, to read docker-compose.yml): the tests' servers
#     and clients;
#   - musl-tools and the x86_64/aarch64-unknown-linux-musl Rust target: the
#     musl shim (packaging/build-musl.sh) and the Plex-like musl stand-in;
#   - dpkg-dev, help2man, lintian, debootstrap, systemd (systemd-analyze):
#     building the .deb and checking it (tests/tests/packaging_deb.rs);
#   - openssl: the certificates of the TLS tests (tests/tests/shim_tls.rs);
#   - python3-prometheus-client: Prometheus's own text parser, which reads
#     the launcher's metrics in tests/tests/launcher_metrics.rs;
#   - gcc-aarch64-linux-gnu: the C compiler ring's build script needs for
#     tests/run.sh's cargo check of the launcher for arm64;
#   - pgbouncer: the PgBouncer tests (tests/tests/remote_pgbouncer.rs) start
#     their own pgbouncer process; the package's service is disabled and
#     stopped right after it is installed, so nothing is left listening.
# PostgreSQL's package creates and starts its "main" cluster as it always
# does (the tests use throwaway clusters on free ports of their own and do
# not need it stopped); nothing of the system's PostgreSQL settings changes.
# Does nothing, quickly, when all is present.
set -euo pipefail

need=()
for pkg in postgresql libsqlite3-dev sqlite3 python3 python3-yaml \
    musl-tools binutils dpkg-dev help2man lintian debootstrap systemd openssl pgbouncer \
    python3-prometheus-client gcc-aarch64-linux-gnu; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "plex-pg: installing ${need[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "plex-pg: run as root, or install them with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
    # PgBouncer installed just now: its system service (on port 6432) is
    # not wanted; the tests run pgbouncer themselves with a configuration
    # of their own. Left alone when PgBouncer was already installed: then it
    # is the admin's.
    if [[ " ${need[*]} " == *" pgbouncer "* ]]; then
        if command -v systemctl >/dev/null; then
            systemctl disable --now pgbouncer.service >/dev/null 2>&1 || systemctl disable pgbouncer.service >/dev/null 2>&1 || true
        fi
        if [ -x /etc/init.d/pgbouncer ]; then
            /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
            update-rc.d pgbouncer disable >/dev/null 2>&1 || true
        fi
    fi
fi

# rustfmt and clippy: tests/run.sh checks formatting and lints first.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        if ! command -v rustup >/dev/null; then
            echo "plex-pg: cargo $component is missing and rustup is not there to add it; install it with your Rust toolchain" >&2
            exit 1
        fi
        echo "plex-pg: adding the Rust component $component" >&2
        rustup component add "$component"
    fi
done

# The shim ships as a musl library: the Rust standard library for musl.
musl_target="$(uname -m)-unknown-linux-musl"
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/$musl_target/lib" ]; then
    if ! command -v rustup >/dev/null; then
        echo "plex-pg: the Rust target $musl_target is missing and rustup is not there to add it; install it with your Rust toolchain" >&2
        exit 1
    fi
    echo "plex-pg: adding the Rust target $musl_target" >&2
    rustup target add "$musl_target"
fi
