#!/bin/bash
# make deb: the Debian package built the way apt.postgresql.org builds
# extensions (debian/, pg_buildext, dpkg-buildpackage), installed with dpkg
# after any other copy of clerk_sync is removed, and tried on a fresh
# cluster (test/package.pl); then removed again.  As root; ends with
# "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
PG=15
PGBIN=/usr/lib/postgresql/$PG/bin
PGXS_DIR=/usr/lib/postgresql/$PG/lib/pgxs
PACKAGES="debhelper dpkg-dev fakeroot postgresql-server-dev-all postgresql-$PG postgresql-server-dev-$PG postgresql-$PG-cron libcurl4-openssl-dev libsodium-dev pkg-config libipc-run-perl python3 make gcc"
PKG=postgresql-$PG-clerk-sync

# shellcheck source=test/packages.sh
. "$HERE/test/packages.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "run as root: it installs and removes a package" >&2
	exit 2
fi
# shellcheck disable=SC2086
install_packages $PACKAGES

BUILD=$(mktemp -d /tmp/clerk_sync_deb.XXXXXX)
WORK=$(mktemp -d /tmp/clerk_sync.XXXXXX)
cleanup() {
	dpkg -r "$PKG" >/dev/null 2>&1 || true
	rm -rf "$BUILD" "$WORK"
}
trap cleanup EXIT

say "building $PKG with dpkg-buildpackage"
mkdir "$BUILD/clerk-sync"
tar -C "$HERE" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=results --exclude='clerk_sync--1.1.sql' \
	-cf - . | tar -C "$BUILD/clerk-sync" -xf -
if ! (cd "$BUILD/clerk-sync" && dpkg-buildpackage -us -uc -b >"$BUILD/build.log" 2>&1); then
	tail -40 "$BUILD/build.log"
	echo "0 passed, 1 failed"
	exit 1
fi
DEB=$(ls "$BUILD"/${PKG}_*.deb)

say "installing $(basename "$DEB") (after removing any other copy of clerk_sync)"
rm -f "$("$PGBIN/pg_config" --pkglibdir)"/clerk_sync.so "$("$PGBIN/pg_config" --sharedir)"/extension/clerk_sync*
dpkg -i "$DEB" >/dev/null
dpkg -L "$PKG" | grep -E 'clerk_sync(\.so|\.control|--1\.1\.sql)$'

chmod 755 "$WORK"
tar -C "$HERE" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=results -cf - . | tar -C "$WORK" -xf -
chown -R postgres:postgres "$WORK"
set +e
runuser -u postgres -- env -i PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" HOME="$WORK" LANG=C.UTF-8 \
	PYTHON="$PYTHON" TESTDIR="$WORK" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
	bash -c "cd '$WORK' && prove -v -I '$PGXS_DIR/src/test/perl' -I test/perl test/package.pl" >"$BUILD/prove.log" 2>&1
rc=$?
set -e
cat "$BUILD/prove.log"
passed=$(grep -cE '^ok [0-9]+' "$BUILD/prove.log" || true)
failed=$(grep -cE '^not ok [0-9]+' "$BUILD/prove.log" || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
