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
PGBIN=/usr/lib/postgresql/15/bin
PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
PYTHON=${PYTHON:-/usr/bin/python3}
PACKAGES="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libsodium-dev pkg-config postgresql-15-cron libipc-run-perl python3 make gcc curl bc"

say() { printf '== %s\n' "$*"; }

install_packages() {
	local missing=()
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

outer() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run as root: the harness installs packages and runs the cluster as the postgres user" >&2
		exit 2
	fi
	install_packages
	# the Debian package starts a cluster of its own; it is not used here
	say "building and installing clerk_sync"
	make -C "$HERE" -s with_llvm=no PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	make -C "$HERE" -s install with_llvm=no PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null

	WORK=$(mktemp -d /tmp/clerk_sync.XXXXXX)
	chmod 755 "$WORK"
	tar -C "$HERE" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=results -cf - . | tar -C "$WORK" -xf -
	mkdir -p "$WORK/out"
	chown -R postgres:postgres "$WORK"
	set +e
	runuser -u postgres -- env -i PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" HOME="$WORK" \
		LANG=C.UTF-8 PYTHON="$PYTHON" WORK="$WORK" \
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
	local passed=0 failed=0 n f rc
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
		make -s installcheck TAP_TESTS= REGRESS="${regress[*]}" >"$WORK/out/regress.log" 2>&1
		set -e
		cat "$WORK/out/regress.log"
		n=$(grep -cE '[a-z0-9_]+ +\.\.\. ok' "$WORK/out/regress.log" || true)
		passed=$((passed + n))
		n=$(grep -cE '\.\.\. FAILED' "$WORK/out/regress.log" || true)
		failed=$((failed + n))
		[ -f regression.diffs ] && cat regression.diffs
		cleanup
		rm -rf "$WORK/data"
	fi

	if [ ${#taps[@]} -gt 0 ]; then
		say "TAP (make installcheck): ${taps[*]}"
		set +e
		env -u PGHOST -u PGPORT make -s installcheck REGRESS= PROVE_FLAGS="-v -I test/perl" \
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
		# no mock key (sk_test_mock_ and 32 random hex digits) in any server's log
		if grep -rlE 'sk_test_mock_[0-9a-f]{32}' "$WORK/tmp_check/log" "$WORK/out" 2>/dev/null; then
			echo "a secret key appeared in the log files above" >&2
			failed=$((failed + 1))
		fi
	fi
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

if [ "${1:-}" = --inner ]; then
	MODE=$2
	trap cleanup EXIT
	case "$MODE" in
	test) run_tests ;;
	demo) cd "$WORK" && TESTDIR="$WORK/out" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" PERL5LIB="$PGXS_DIR/src/test/perl:$WORK/test/perl" perl test/demo.pl ;;
	bench)
		start_cluster
		bash "$WORK/bench/run.sh"
		;;
	*) echo "unknown mode $MODE" >&2; exit 2 ;;
	esac
else
	outer
fi
