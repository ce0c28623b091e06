#!/bin/bash
# The one harness behind `make test`, `make demo` and `make bench`.
#
# As root: installs the missing Debian packages, builds and installs the
# extension, copies the tree to a scratch directory owned by the postgres
# OS user and runs the rest as that user (PostgreSQL refuses to run as
# root): a throwaway cluster with clerk_sync and pg_cron preloaded, the
# bundled mock Clerk API, then the chosen mode.  Everything started is
# stopped on exit.
set -euo pipefail

MODE=${1:-test}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
PYTHON=${PYTHON:-/usr/bin/python3}
PACKAGES="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libsodium-dev postgresql-15-cron libipc-run-perl python3 make gcc curl bc"

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
		say "logs kept in $HERE/results"
	fi
	rm -rf "$WORK"
	exit $rc
}

# ---- everything below runs as the postgres user, inside $WORK ----

free_port() {
	"$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

MOCK_PID=
cleanup() {
	[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
	[ -d "$WORK/data" ] && $PGBIN/pg_ctl -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1
	true
}

start_mock() {
	# start_mock <secret key> [mock options...]
	local key=$1
	shift
	rm -f "$WORK/mock.port"
	# the key goes through the environment, so it is not in a process listing
	MOCK_CLERK_SECRET_KEY="$key" "$PYTHON" "$WORK/test/mock_clerk.py" --port 0 --port-file "$WORK/mock.port" \
		--log-file "$WORK/out/mock.log" "$@" &
	MOCK_PID=$!
	for _ in $(seq 100); do
		[ -s "$WORK/mock.port" ] && break
		sleep 0.1
	done
	[ -s "$WORK/mock.port" ] || { echo "the mock Clerk API did not start" >&2; exit 1; }
	MOCK_URL="http://127.0.0.1:$(cat "$WORK/mock.port")/v1"
}

start_cluster() {
	# start_cluster <api url> [key for postgresql.conf]
	PGPORT=$(free_port)
	export PGPORT PGHOST="$WORK" PGUSER=postgres
	$PGBIN/initdb -D "$WORK/data" -A trust -U postgres -E UTF8 --locale=C >"$WORK/out/initdb.log"
	cat >>"$WORK/data/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = ''
		unix_socket_directories = '$WORK'
		shared_preload_libraries = 'clerk_sync, pg_cron'
		cron.database_name = 'postgres'
		cron.use_background_workers = on
		max_worker_processes = 32
		fsync = off
		clerk_sync.api_url = '$1'
	EOF
	if [ -n "${2:-}" ]; then
		# a throwaway key made up for this run, in a file only postgres reads
		echo "clerk_sync.secret_key = '$2'" >>"$WORK/data/postgresql.conf"
	fi
	# a random encryption root key for the credential vault, for this run only
	CREDENTIALS_ENCRYPTION_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') \
		$PGBIN/pg_ctl -D "$WORK/data" -l "$WORK/out/postgresql.log" -w start >/dev/null
}

run_tests() {
	local key="sk_test_mock_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	local passed=0 failed=0 n
	start_mock "$key"
	start_cluster "$MOCK_URL" "$key"
	export CLERK_MOCK_URL="$MOCK_URL" CLERK_MOCK_KEY="$key"

	cd "$WORK"
	local regress=()
	for f in sql/*.sql; do
		[ -e "$f" ] || continue
		n=$(basename "$f" .sql)
		if [ -z "${TESTS:-}" ] || [[ " $TESTS " == *" $n "* ]]; then regress+=("$n"); fi
	done
	if [ ${#regress[@]} -gt 0 ]; then
		say "pg_regress: ${regress[*]}"
		set +e
		"$PGXS_DIR/src/test/regress/pg_regress" --bindir="$PGBIN" --host="$WORK" --port="$PGPORT" \
			--inputdir=. --outputdir="$WORK/out/regress" --dbname=contrib_regression \
			"${regress[@]}" >"$WORK/out/regress.log" 2>&1
		set -e
		cat "$WORK/out/regress.log"
		n=$(grep -cE '^(test |     )?[ ]*[a-z0-9_]+ +\.\.\. ok' "$WORK/out/regress.log" || true)
		passed=$((passed + n))
		n=$(grep -cE '\.\.\. FAILED' "$WORK/out/regress.log" || true)
		failed=$((failed + n))
		[ -f "$WORK/out/regress/regression.diffs" ] && cat "$WORK/out/regress/regression.diffs"
	fi

	local taps=()
	for f in t/*.pl; do
		[ -e "$f" ] || continue
		n=$(basename "$f" .pl)
		if [ -z "${TESTS:-}" ] || [[ " $TESTS " == *" $n "* ]]; then taps+=("$f"); fi
	done
	if [ ${#taps[@]} -gt 0 ]; then
		say "TAP: ${taps[*]}"
		local rc
		set +e
		PERL5LIB="$PGXS_DIR/src/test/perl:$WORK/test/perl" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
			TESTDIR="$WORK/out" PGHOST= PGPORT= \
			prove -v "${taps[@]}" >"$WORK/out/tap.log" 2>&1
		rc=$?
		set -e
		cat "$WORK/out/tap.log"
		n=$(grep -cE '^ok [0-9]+' "$WORK/out/tap.log" || true)
		passed=$((passed + n))
		n=$(grep -cE '^not ok [0-9]+' "$WORK/out/tap.log" || true)
		# a script that died before its plan counts as one failure
		if [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then n=1; fi
		failed=$((failed + n))
	fi

	if grep -qF "$key" "$WORK/out/postgresql.log" "$WORK/out/mock.log" 2>/dev/null; then
		echo "the secret key appeared in a log file" >&2
		failed=$((failed + 1))
	fi
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

run_demo() {
	local key api
	if [ -n "${CLERK_SECRET_KEY:-}" ]; then
		api=${CLERK_API_URL:-https://api.clerk.com/v1}
		say "syncing from $api with the key in CLERK_SECRET_KEY"
		start_cluster "$api"
	else
		key="sk_test_mock_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
		start_mock "$key" --users 250 --organizations 12 --memberships 400 --seed 7
		say "mock Clerk API at $MOCK_URL (250 users, 12 organizations, 400 memberships)"
		start_cluster "$MOCK_URL" "$key"
	fi
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -f "$WORK/test/demo.sql"
}

if [ "${1:-}" = --inner ]; then
	MODE=$2
	trap cleanup EXIT
	case "$MODE" in
	test) run_tests ;;
	demo) run_demo ;;
	bench)
		start_cluster "http://127.0.0.1:1/v1"
		bash "$WORK/bench/run.sh"
		;;
	*) echo "unknown mode $MODE" >&2; exit 2 ;;
	esac
else
	outer
fi
