#!/bin/bash
# The benchmark behind `make bench` (see bench/README.md).  Runs as the
# postgres user inside the scratch copy test/run.sh made, against the
# cluster it started (PGHOST/PGPORT are set).  Prints a Markdown table and
# writes it to $WORK/out/bench.md.
set -euo pipefail

SCALE=${BENCH_SCALE:-100000}          # users; organizations and memberships scale with it
ORGS=$((SCALE / 20))
MEMS=$((SCALE * 3 / 2))
SMALL=$((SCALE / 10))
LATENCY=100
LIMIT=1000
PAGE=500
CONC=4
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=$WORK/out
KEY="sk_test_mock_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# the key reaches the server through a file only it reads (no setting holds a secret)
(umask 077 && printf '%s' "$KEY" >"$OUT/bench.key")
PSQL="psql -X -q -At -v ON_ERROR_STOP=1 -d postgres"
MOCK_PID=

stop_mock() { [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null; MOCK_PID=; true; }
trap stop_mock EXIT

start_mock() {
	# start_mock users orgs memberships
	stop_mock
	rm -f "$OUT/bench-mock.port"
	MOCK_CLERK_SECRET_KEY="$KEY" "$PYTHON" "$WORK/test/mock_clerk.py" --port 0 \
		--port-file "$OUT/bench-mock.port" --users "$1" --organizations "$2" --memberships "$3" \
		--seed 11 --latency-ms $LATENCY --rate-limit $LIMIT >"$OUT/bench-mock.out" 2>&1 &
	MOCK_PID=$!
	for _ in $(seq 100); do [ -s "$OUT/bench-mock.port" ] && break; sleep 0.1; done
	MOCK_URL="http://127.0.0.1:$(cat "$OUT/bench-mock.port")/v1"
}

now() { date +%s.%N; }
# CPU time (s) all processes of the machine used so far, and the cores
cpu_busy() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }
NCPU=$(nproc)
# CPU seconds a process has used (user + system)
proc_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_pct() { echo "scale=0; 100 * ($2 - $1) / ($3 * $NCPU)" | bc; }
elapsed() { echo "$2 - $1" | bc; }

settings() {
	# the session settings every measured sync uses (the key is read from the
	# environment of this script by psql, never written to a file)
	cat <<-EOF
		SET clerk_sync.api_url = '$MOCK_URL';
		SET clerk_sync.page_size = $PAGE;
		SET clerk_sync.rate_limit = $LIMIT;
		SET clerk_sync.concurrency = $CONC;
		SET clerk_sync.secret_key_file = '$OUT/bench.key';
	EOF
}

reset_tables() {
	$PSQL -c "TRUNCATE clerk.users, clerk.organizations, clerk.organization_members, clerk.sync_runs, clerk.audit_logs" >/dev/null
	$PSQL -c "CHECKPOINT" >/dev/null
}

# sync <label>: one full sync; sets SYNC_* variables; samples the worker's peak RSS
sync() {
	local lsn0 lsn1 id pid hwm=0 v
	lsn0=$($PSQL -c "SELECT pg_current_wal_insert_lsn()")
	SYNC_WORKER_CPU=0
	local mock0
	mock0=$(proc_cpu "$MOCK_PID")
	id=$( { settings; echo "SELECT id FROM clerk_sync_all(wait => false);"; } | $PSQL)
	pid=$($PSQL -c "SELECT pid FROM clerk.sync_progress WHERE run_id = $id")
	# watch the worker through /proc only, so the watching costs next to nothing
	while [ -n "$pid" ] && [ -d "/proc/$pid" ]; do
		if [ -r "/proc/$pid/status" ]; then
			# private memory only: shared buffers the worker touches are not its own
			v=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
			SYNC_WORKER_CPU=$(proc_cpu "$pid")
			[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		fi
		sleep 0.25
	done
	while [ "$($PSQL -c "SELECT status FROM clerk.sync_runs WHERE id = $id")" = running ]; do sleep 0.1; done
	lsn1=$($PSQL -c "SELECT pg_current_wal_insert_lsn()")
	SYNC_MOCK_CPU=$(echo "$(proc_cpu "$MOCK_PID") - $mock0" | bc)
	SYNC_STATUS=$($PSQL -c "SELECT status FROM clerk.sync_runs WHERE id = $id")
	SYNC_SECS=$($PSQL -c "SELECT round(extract(epoch FROM finished_at - started_at), 2) FROM clerk.sync_runs WHERE id = $id")
	SYNC_REQ=$($PSQL -c "SELECT stats ->> 'requests' FROM clerk.sync_runs WHERE id = $id")
	SYNC_429=$($PSQL -c "SELECT stats ->> 'rate_limited' FROM clerk.sync_runs WHERE id = $id")
	SYNC_ROWS=$($PSQL -c "SELECT sum((v ->> 'fetched')::int) FROM clerk.sync_runs, jsonb_each(stats) e(k, v) WHERE id = $id AND jsonb_typeof(v) = 'object'")
	SYNC_WRITTEN=$($PSQL -c "SELECT sum((v ->> 'inserted')::int + (v ->> 'updated')::int + (v ->> 'deleted')::int) FROM clerk.sync_runs, jsonb_each(stats) e(k, v) WHERE id = $id AND jsonb_typeof(v) = 'object'")
	SYNC_SPLIT=$($PSQL -c "SELECT round((stats ->> 'wait_ms')::numeric / 1000, 1) || ' s waiting for answers, ' || round((stats ->> 'write_ms')::numeric / 1000, 1) || ' s writing pages' FROM clerk.sync_runs WHERE id = $id")
	SYNC_WAL=$($PSQL -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")
	SYNC_RSS_MB=$(echo "scale=1; $hwm / 1024" | bc)
	[ "$SYNC_STATUS" = succeeded ] || { echo "bench sync $1 ended $SYNC_STATUS" >&2; $PSQL -c "SELECT error FROM clerk.sync_runs WHERE id = $id" >&2; exit 1; }
}

# The list of page URLs a full sync requests (same limit and order).
page_urls() {
	local users=$1 orgs=$2 mems=$3 o
	echo "$MOCK_URL/users/count"
	for ((o = 0; o <= users; o += PAGE)); do echo "$MOCK_URL/users?limit=$PAGE&offset=$o&order_by=created_at"; done
	for ((o = 0; o <= orgs; o += PAGE)); do echo "$MOCK_URL/organizations?include_members_count=true&limit=$PAGE&offset=$o&order_by=created_at"; done
	for ((o = 0; o <= mems; o += PAGE)); do echo "$MOCK_URL/organization_memberships?limit=$PAGE&offset=$o&order_by=created_at"; done
}

echo "== benchmark: $SCALE users, $ORGS organizations, $MEMS memberships; ${LATENCY} ms latency, $LIMIT requests/10 s, page_size $PAGE, concurrency $CONC"
$PSQL -c "CREATE EXTENSION IF NOT EXISTS clerk_sync" >/dev/null

# --- small data set first, for the RSS comparison ---
start_mock $SMALL $((SMALL / 20)) $((SMALL * 3 / 2))
reset_tables
sync small
SMALL_RSS=$SYNC_RSS_MB
SMALL_SECS=$SYNC_SECS

# --- the full sync ---
start_mock $SCALE $ORGS $MEMS
reset_tables
c0=$(cpu_busy)
sync full
FULL_BUSY=$(busy_pct "$c0" "$(cpu_busy)" "$SYNC_SECS")
FULL_WORKER_CPU=$SYNC_WORKER_CPU
FULL_SPLIT=$SYNC_SPLIT
FULL_MOCK_CPU=$SYNC_MOCK_CPU
FULL=("$SYNC_SECS" "$SYNC_ROWS" "$SYNC_REQ" "$SYNC_429" "$SYNC_RSS_MB" "$SYNC_WAL" "$SYNC_WRITTEN")

# --- unchanged re-sync ---
sync again
AGAIN=("$SYNC_SECS" "$SYNC_ROWS" "$SYNC_REQ" "$SYNC_429" "$SYNC_RSS_MB" "$SYNC_WAL" "$SYNC_WRITTEN")

# --- incremental: 1% of the users change, then clerk_sync_changes() ---
CHANGED=$((SCALE / 100))
$PSQL -c "SELECT id FROM clerk.users ORDER BY md5(id) LIMIT $CHANGED" >"$OUT/changed.txt"
"$PYTHON" - "$MOCK_URL" "$OUT/changed.txt" <<'PY'
import json, sys, urllib.request
base = sys.argv[1].rsplit("/v1", 1)[0]
for n, line in enumerate(open(sys.argv[2])):
    uid = line.strip()
    req = urllib.request.Request(f"{base}/__mock/users/{uid}", method="PATCH",
                                 data=json.dumps({"last_name": f"Changed{n}"}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
lsn0=$($PSQL -c "SELECT pg_current_wal_insert_lsn()")
id=$( { settings; echo "SELECT id FROM clerk_sync_changes();"; } | $PSQL 2>/dev/null)
INC_SECS=$($PSQL -c "SELECT round(extract(epoch FROM finished_at - started_at), 2) FROM clerk.sync_runs WHERE id = $id")
INC_REQ=$($PSQL -c "SELECT stats ->> 'requests' FROM clerk.sync_runs WHERE id = $id")
INC_UPD=$($PSQL -c "SELECT stats -> 'users' ->> 'updated' FROM clerk.sync_runs WHERE id = $id")
INC_GOT=$($PSQL -c "SELECT count(*) FROM clerk.users WHERE last_name LIKE 'Changed%'")
INC_PCT=$(echo "scale=1; 100 * $INC_REQ / ${FULL[2]}" | bc)

# --- (a) the fetch alone: the same requests, same concurrency, nothing written ---
PAGES=$OUT/pages
rm -rf "$PAGES"; mkdir -p "$PAGES"
page_urls $SCALE $ORGS $MEMS >"$OUT/urls.txt"
NURLS=$(wc -l <"$OUT/urls.txt")
printf 'Authorization: Bearer %s\nClerk-API-Version: 2026-05-12\n' "$KEY" >"$OUT/headers.txt"
chmod 600 "$OUT/headers.txt"
i=0
: >"$OUT/curl.cfg"
while read -r url; do
	i=$((i + 1))
	printf 'url = "%s"\noutput = "%s/%05d.json"\n' "$url" "$PAGES" "$i" >>"$OUT/curl.cfg"
done <"$OUT/urls.txt"
t0=$(now)
c0=$(cpu_busy)
m0=$(proc_cpu "$MOCK_PID")
curl -s --no-progress-meter --fail --parallel --parallel-max $CONC -H @"$OUT/headers.txt" -K "$OUT/curl.cfg"
t1=$(now)
FETCH_SECS=$(printf '%.2f' "$(elapsed "$t0" "$t1")")
FETCH_BUSY=$(busy_pct "$c0" "$(cpu_busy)" "$FETCH_SECS")
FETCH_MOCK_CPU=$(echo "$(proc_cpu "$MOCK_PID") - $m0" | bc)
rm -f "$OUT/headers.txt"

# --- (b) the write alone: the same JSON from local files through the same SQL ---
reset_tables
: >"$OUT/load.sql"
i=0
while read -r url; do
	i=$((i + 1))
	f=$(printf '%s/%05d.json' "$PAGES" "$i")
	case "$url" in
	*/users/count) continue ;;
	*/users\?*) e=users ;;
	*/organizations\?*) e=organizations ;;
	*) e=memberships ;;
	esac
	# (as text: parsed and repaired as the sync parses and repairs its answers)
	echo "SELECT clerk_apply_page('$e', pg_read_file('$f'));" >>"$OUT/load.sql"
done <"$OUT/urls.txt"
t0=$(now)
c0=$(cpu_busy)
$PSQL -f "$OUT/load.sql" >/dev/null
t1=$(now)
WRITE_SECS=$(printf '%.2f' "$(elapsed "$t0" "$t1")")
WRITE_BUSY=$(busy_pct "$c0" "$(cpu_busy)" "$WRITE_SECS")
LOADED=$($PSQL -c "SELECT (SELECT count(*) FROM clerk.users) + (SELECT count(*) FROM clerk.organizations) + (SELECT count(*) FROM clerk.organization_members)")
rm -rf "$PAGES"

SLOWER=$(echo "if ($FETCH_SECS > $WRITE_SECS) $FETCH_SECS else $WRITE_SECS" | bc)
RATIO=$(echo "scale=2; ${FULL[0]} / $SLOWER" | bc)
RSS_RATIO=$(echo "scale=2; ${FULL[4]} / $SMALL_RSS" | bc)
RPS=$(echo "${FULL[1]} / ${FULL[0]}" | bc)

{
	echo "| measurement | value |"
	echo "|---|---|"
	echo "| data set | $SCALE users, $ORGS organizations, $MEMS memberships |"
	echo "| mock | ${LATENCY} ms added per request, $LIMIT requests per 10 s |"
	echo "| full sync: wall time | ${FULL[0]} s (CPU busy: ${FULL_BUSY}% of $NCPU cores) |"
	echo "| full sync: rows/s | $RPS |"
	echo "| full sync: where the worker's time went | $FULL_SPLIT |"
	echo "| full sync: CPU seconds of the worker / of the mock | $FULL_WORKER_CPU / $FULL_MOCK_CPU |"
	echo "| full sync: requests | ${FULL[2]} |"
	echo "| full sync: 429s received | ${FULL[3]} |"
	echo "| full sync: worker peak private RSS (RssAnon) | ${FULL[4]} MB |"
	echo "| full sync: WAL bytes | ${FULL[5]} |"
	echo "| unchanged re-sync: wall time | ${AGAIN[0]} s |"
	echo "| unchanged re-sync: rows written | ${AGAIN[6]} |"
	echo "| unchanged re-sync: WAL bytes | ${AGAIN[5]} |"
	echo "| incremental after $CHANGED users changed: wall time | $INC_SECS s (full sync: ${FULL[0]} s) |"
	echo "| incremental: requests | $INC_REQ = **$INC_PCT%** of the full sync's ${FULL[2]} (target at most 5%) |"
	echo "| incremental: users updated / changes present afterwards | $INC_UPD / $INC_GOT of $CHANGED |"
	echo "| (a) fetch alone ($NURLS requests, curl, concurrency $CONC) | $FETCH_SECS s (CPU busy: ${FETCH_BUSY}%; mock CPU $FETCH_MOCK_CPU s) |"
	echo "| (b) write alone ($LOADED rows from files, same SQL) | $WRITE_SECS s (CPU busy: ${WRITE_BUSY}%) |"
	echo "| full sync / slower of (a), (b) | **$RATIO** (target at most 1.5) |"
	echo "| worker peak private RSS (RssAnon), $SMALL users | $SMALL_RSS MB (sync took $SMALL_SECS s) |"
	echo "| worker peak private RSS (RssAnon), $SCALE / $SMALL users | **$RSS_RATIO** (flat means it does not grow with the data) |"
} | tee "$OUT/bench.md"
