#!/usr/bin/env bash
# Builds plex-pg's Debian package from the workspace, with Debian's own
# tools (dpkg-deb, dpkg-shlibdeps, help2man) and no cargo plugin:
#
#   bash packaging/build-deb.sh        ->  target/debian/plex-pg_<version>_<arch>.deb
#
# Steps: the release launcher (cargo), the musl shim (build-musl.sh), the
# runtime files staged (stage.sh), then what only the package has: the
# configuration as a conffile (mode 0640; postinst gives it to the plex
# group), the systemd drop-in for plexmediaserver.service (inactive, under
# /usr/share/plex-pg: plex-pg-launcher enable arms it), the man page
# made from --help, copyright, changelog, lintian overrides, maintainer
# scripts and md5sums. Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
script_name=build-deb
. packaging/common.sh
here=packaging

need dpkg-deb dpkg
need dpkg-shlibdeps dpkg-dev
need help2man help2man
echo "plex-pg build-deb: building the launcher and the import" >&2
cargo build --release -p plex-pg-launcher -p plex-pg-import
bash "$here/build-musl.sh"

launcher="$target_dir/release/plex-pg-launcher"
version="$("$launcher" --version | awk '{print $2}')"
[ -n "$version" ] || die "cannot read the version from $launcher --version"
changelog_version="$(sed -n '1s/^plex-pg (\([^)]*\)).*/\1/p' "$here/debian/changelog")"
[ "$changelog_version" = "$version" ] \
    || die "packaging/debian/changelog starts with version $changelog_version but the workspace is $version: add an entry"
homepage="$(sed -n 's/^repository *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)"
arch="$(dpkg --print-architecture)"

out="$target_dir/debian"
root="$out/root"
rm -rf "$root"
mkdir -p "$root"
bash "$here/stage.sh" "$root"

doc="$root/usr/share/doc/plex-pg"
install -d -m 0755 "$root/etc/plex-pg" "$root/usr/share/plex-pg/systemd" \
    "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"
install -m 0640 "$here/config.toml" "$root/etc/plex-pg/config.toml"
# Inactive: plex-pg-launcher enable installs the same text (built into it)
# as /etc/systemd/system/plexmediaserver.service.d/10-plex-pg.conf.
install -m 0644 "$here/systemd/plex-pg.conf" "$root/usr/share/plex-pg/systemd/10-plex-pg.conf"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
gzip -9n < "$here/debian/changelog" > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
# Lines starting with # are the reasons, for people; lintian reads the rest.
install -m 0644 "$here/debian/lintian-overrides" "$root/usr/share/lintian/overrides/plex-pg"

help2man --no-info --version-string="$version" \
    --name="start Plex Media Server on PostgreSQL with the plex-pg shim, as its init and fork-safety supervisor" \
    --include="$here/debian/man-extra.h2m" \
    "$launcher" > "$out/plex-pg-launcher.1" \
    || die "help2man could not run $launcher --help"
gzip -9n < "$out/plex-pg-launcher.1" > "$root/usr/share/man/man1/plex-pg-launcher.1.gz"
chmod 0644 "$root/usr/share/man/man1/plex-pg-launcher.1.gz"
help2man --no-info --version-string="$version" \
    --name="bring an existing Plex SQLite library into PostgreSQL, or write it back to SQLite files (run by plex-pg-launcher import and export)" \
    "$target_dir/release/plex-pg-import" > "$out/plex-pg-import.1" \
    || die "help2man could not run plex-pg-import --help"
gzip -9n < "$out/plex-pg-import.1" > "$root/usr/share/man/man1/plex-pg-import.1.gz"
chmod 0644 "$root/usr/share/man/man1/plex-pg-import.1.gz"

# Dependencies of the launcher, as Debian computes them (the shim needs
# Plex's musl, which no Debian package provides).
shlib_dir="$(mktemp -d)"
trap 'rm -rf "$shlib_dir"' EXIT
mkdir "$shlib_dir/debian"
printf 'Source: plex-pg\n\nPackage: plex-pg\nArchitecture: any\n' > "$shlib_dir/debian/control"
root_abs="$(cd "$root" && pwd)"
depends="$(cd "$shlib_dir" && dpkg-shlibdeps -O -e"$root_abs/usr/bin/plex-pg-launcher" 2>/dev/null \
    | sed -n 's/^shlibs:Depends=//p')"
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies for the launcher"
# plex-pg-import reads SQLite files with the system's libsqlite3, opened
# with dlopen (dpkg-shlibdeps cannot see it).
depends="$depends, libsqlite3-0"

install -d -m 0755 "$root/DEBIAN"
size="$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$size|" \
    -e "s|@DEPENDS@|$depends|" -e "s|@HOMEPAGE@|$homepage|" \
    "$here/debian/control.in" > "$root/DEBIAN/control"
install -m 0755 "$here/debian/preinst" "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm" "$root/DEBIAN/"
install -m 0644 "$here/debian/conffiles" "$here/debian/triggers" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$out/plex-pg_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
