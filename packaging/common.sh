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
