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
CONC_NEW=32                           # the later rows: the sync adapts its concurrency up to this
OFFSET_COST=50                        # µs per skipped row on offset listings (the offset-cost model)
RL_LATENCY=300                        # the rate-limit floor's latency: enough to hit the limit
SEQ_USERS=$((SCALE < 20000 ? SCALE : 20000))   # (d)'s slice
SEQ_PAGE=100
SYNC_TIMEOUT=${BENCH_SYNC_TIMEOUT:-1200}      # s: no wait below is longer than this
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
		--seed 11 --latency-ms $LATENCY --rate-limit $LIMIT --prepared-pages >"$OUT/bench-mock.out" 2>&1 &
	MOCK_PID=$!
	for _ in $(seq 100); do [ -s "$OUT/bench-mock.port" ] && break; sleep 0.1; done
	[ -s "$OUT/bench-mock.port" ] || { echo "the mock did not start" >&2; cat "$OUT/bench-mock.out" >&2; exit 1; }
	MOCK_URL="http://127.0.0.1:$(cat "$OUT/bench-mock.port")/v1"
	# every object's JSON encoded before anything is timed: a page is then
	# the join of prepared bytes, and the mock's CPU is not what is measured
	curl -s --max-time 600 -X POST "${MOCK_URL%/v1}/__mock/prepare" >/dev/null \
		|| { echo "the mock did not prepare its pages" >&2; exit 1; }
}

mock_config() {
	# mock_config JSON: change the running mock's settings (/__mock/config).
	# Each call also sets rate_limit, which empties the mock's rate window, so
	# that a sync does not start with the previous one's requests counted.
	local r
	r=$(curl -s --max-time 10 -X POST -H 'Content-Type: application/json' \
		--data "{\"rate_limit\": $LIMIT, $1}" "${MOCK_URL%/v1}/__mock/config") \
		|| { echo "the mock's config did not answer" >&2; exit 1; }
	case "$r" in *'"error"'*) echo "mock config {$1}: $r" >&2; exit 1 ;; esac
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
	# settings [concurrency]: the session settings every measured sync uses
	# (the key is read from the environment of this script by psql, never
	# written to a file)
	cat <<-EOF
		SET clerk_sync.api_url = '$MOCK_URL';
		SET clerk_sync.page_size = $PAGE;
		SET clerk_sync.rate_limit = $LIMIT;
		SET clerk_sync.concurrency = ${1:-$CONC};
		SET clerk_sync.secret_key_file = '$OUT/bench.key';
		SET clerk_sync.entities = '${BENCH_ENTITIES:-all}';
	EOF
}

reset_tables() {
	$PSQL -c "TRUNCATE clerk.users, clerk.organizations, clerk.organization_members, clerk.organization_invitations, clerk.invitations, clerk.organization_domains, clerk.roles, clerk.permissions, clerk.sync_runs, clerk.audit_logs" >/dev/null
	$PSQL -c "CHECKPOINT" >/dev/null
}

# sync <label> [concurrency]: one full sync; sets SYNC_* variables; samples the worker's peak RSS
sync() {
	local lsn0 lsn1 id pid hwm=0 v c deadline=$((SECONDS + SYNC_TIMEOUT))
	lsn0=$($PSQL -c "SELECT pg_current_wal_insert_lsn()")
	SYNC_WORKER_CPU=0
	local mock0
	mock0=$(proc_cpu "$MOCK_PID")
	id=$( { settings "${2:-$CONC}"; echo "SELECT id FROM clerk_sync_all(wait => false);"; } | $PSQL)
	pid=$($PSQL -c "SELECT pid FROM clerk.sync_progress WHERE run_id = $id")
	# watch the worker through /proc only, so the watching costs next to nothing
	while [ -n "$pid" ] && [ -d "/proc/$pid" ]; do
		sync_overdue "$1" "$id" "$deadline"
		if [ -r "/proc/$pid/status" ]; then
			# private memory only: shared buffers the worker touches are not its own
			v=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
			# (a worker gone between the two reads reads 0: keep the last reading)
			c=$(proc_cpu "$pid")
			[ "$c" != 0 ] && SYNC_WORKER_CPU=$c
			[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		fi
		sleep 0.25
	done
	while [ "$($PSQL -c "SELECT status FROM clerk.sync_runs WHERE id = $id")" = running ]; do
		sync_overdue "$1" "$id" "$deadline"
		sleep 0.1
	done
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
	# how the run paged and how many requests it kept in flight (empty when
	# the sync does not report them)
	SYNC_UPAGING=$($PSQL -c "SELECT stats ->> 'users_paging' FROM clerk.sync_runs WHERE id = $id")
	SYNC_MPAGING=$($PSQL -c "SELECT stats ->> 'memberships_paging' FROM clerk.sync_runs WHERE id = $id")
	SYNC_CONC=$($PSQL -c "SELECT stats -> 'concurrency' FROM clerk.sync_runs WHERE id = $id")
	[ "$SYNC_STATUS" = succeeded ] || { echo "bench sync $1 ended $SYNC_STATUS" >&2; $PSQL -c "SELECT error FROM clerk.sync_runs WHERE id = $id" >&2; exit 1; }
}

sync_overdue() {
	# sync_overdue <label> <run id> <deadline>: stop a run that takes too long
	[ "$SECONDS" -lt "$3" ] && return 0
	echo "bench sync $1 still running after $SYNC_TIMEOUT s: canceled" >&2
	$PSQL -c "SELECT clerk_sync_cancel($2)" >/dev/null || true
	exit 1
}

# sync32 <label> <array>: the tables emptied, one full sync at concurrency
# CONC_NEW; <array> gets (seconds, requests, 429s, users_paging,
# memberships_paging, concurrency, CPU busy %)
sync32() {
	local -n _res=$2
	local c0 busy
	reset_tables
	c0=$(cpu_busy)
	sync "$1" $CONC_NEW
	busy=$(busy_pct "$c0" "$(cpu_busy)" "$SYNC_SECS" 2>/dev/null || true)
	_res=("$SYNC_SECS" "$SYNC_REQ" "$SYNC_429" "$SYNC_UPAGING" "$SYNC_MPAGING" "$SYNC_CONC" "$busy")
}

# ratio <a> <b>: a / b to two places, "n/a" when either is missing or b is 0
ratio() {
	if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]] && [ "$(echo "$2 > 0" | bc)" = 1 ]; then
		echo "scale=2; $1 / $2" | bc
	else
		echo n/a
	fi
}
# a table cell: | would end it
cell() { local s=${1//|/\\|}; printf "%s" "$s"; }
# run_cell <array>: one run of sync32, as a table cell
run_cell() {
	local -n _r=$1
	echo "${_r[0]} s (CPU busy: ${_r[6]}%); ${_r[1]} requests; ${_r[2]} 429s; users_paging: $(cell "${_r[3]}"); memberships_paging: $(cell "${_r[4]}"); concurrency: $(cell "${_r[5]}")"
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

# --- offset-cost model, the small data set: offset listings pay per skipped row ---
mock_config "\"offset_cost_us\": $OFFSET_COST"
sync32 oc-small OC_SMALL

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

# --- (c) the write floor: (b)'s finished rows, COPY FROM files into empty copies ---
$PSQL >/dev/null <<-EOF
	SET client_min_messages = warning;
	DROP SCHEMA IF EXISTS bench_copy CASCADE;
	CREATE SCHEMA bench_copy;
	CREATE TABLE bench_copy.users (LIKE clerk.users INCLUDING ALL);
	CREATE TABLE bench_copy.organizations (LIKE clerk.organizations INCLUDING ALL);
	CREATE TABLE bench_copy.organization_members (LIKE clerk.organization_members INCLUDING ALL);
	COPY clerk.users TO '$OUT/copy-users.txt';
	COPY clerk.organizations TO '$OUT/copy-organizations.txt';
	COPY clerk.organization_members TO '$OUT/copy-organization_members.txt';
	CHECKPOINT;
EOF
t0=$(now)
c0=$(cpu_busy)
# one statement, so one transaction, per table
$PSQL >/dev/null <<-EOF
	COPY bench_copy.users FROM '$OUT/copy-users.txt';
	COPY bench_copy.organizations FROM '$OUT/copy-organizations.txt';
	COPY bench_copy.organization_members FROM '$OUT/copy-organization_members.txt';
EOF
t1=$(now)
COPY_SECS=$(printf '%.2f' "$(elapsed "$t0" "$t1")")
COPY_BUSY=$(busy_pct "$c0" "$(cpu_busy)" "$COPY_SECS" 2>/dev/null || true)
COPIED=$($PSQL -c "SELECT (SELECT count(*) FROM bench_copy.users) + (SELECT count(*) FROM bench_copy.organizations) + (SELECT count(*) FROM bench_copy.organization_members)")
$PSQL -c "SET client_min_messages = warning" -c "DROP SCHEMA bench_copy CASCADE" >/dev/null
rm -f "$OUT"/copy-*.txt

# --- offset-cost model and rate-limit floor: the standard data set, concurrency CONC_NEW ---
start_mock $SCALE $ORGS $MEMS
mock_config '"offset_cost_us": 0'
sync32 oc-off OC_OFF
mock_config "\"offset_cost_us\": $OFFSET_COST"
sync32 oc-on OC_ON
mock_config "\"offset_cost_us\": 0, \"latency_ms\": $RL_LATENCY"
sync32 rate-limit RL

# --- (d) the sequential reference on a slice: one request at a time, one statement per record ---
SEQ_ORGS=$((SEQ_USERS / 20))
SEQ_MEMS=$((SEQ_USERS * 3 / 2))
start_mock $SEQ_USERS $SEQ_ORGS $SEQ_MEMS
reset_tables
SEQ=$OUT/seq
rm -rf "$SEQ"; mkdir -p "$SEQ"
(umask 077 && printf 'Authorization: Bearer %s\nClerk-API-Version: 2026-05-12\n' "$KEY" >"$OUT/headers.txt")
# what a simple script writes: per record, one INSERT of the mapped row
# that updates every column when the id is there (the SET lists come from
# the catalog, before the clock starts)
upsert_set() {
	$PSQL -c "SELECT string_agg(format('%I = EXCLUDED.%I', attname, attname), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = 'clerk.$1'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'id'"
}
SET_USERS=$(upsert_set users)
SET_ORGS=$(upsert_set organizations)
SET_MEMS=$(upsert_set organization_members)
# the page into statements: one python3 process for the whole run (a jq or
# python3 process per page costs tens of ms to start and parse, as much as
# the page's writes); it answers each "table page.json page.sql" line with
# the number of records
cat >"$SEQ/split.py" <<'PY'
import json, sys
maps = {sys.argv[i]: (sys.argv[i + 1], sys.argv[i + 2]) for i in range(1, len(sys.argv), 3)}
while True:
    line = sys.stdin.readline()
    if not line:
        break
    table, src, dst = line.rstrip("\n").split("\t")
    fn, sets = maps[table]
    with open(src, encoding="utf-8") as fh:
        page = json.load(fh)
    objs = page if isinstance(page, list) else page.get("data") or []
    with open(dst, "w", encoding="utf-8") as out:
        for o in objs:
            lit = json.dumps([o], separators=(",", ":")).replace("'", "''")
            out.write(f"INSERT INTO clerk.{table} SELECT * FROM clerk.{fn}('{lit}'::jsonb)"
                      f" ON CONFLICT (id) DO UPDATE SET {sets};\n")
    print(len(objs), flush=True)
PY
mkfifo "$SEQ/split.in" "$SEQ/split.out"
"$PYTHON" "$SEQ/split.py" users map_users "$SET_USERS" organizations map_organizations "$SET_ORGS" \
	organization_members map_memberships "$SET_MEMS" <"$SEQ/split.in" >"$SEQ/split.out" &
SPLIT_PID=$!
exec {SPLIT_IN}>"$SEQ/split.in" {SPLIT_OUT}<"$SEQ/split.out"
# one psql session, fed a page's statements at a time; the script waits for
# each page to be written before it asks for the next
coproc SEQ_PSQL { $PSQL 2>&1; }
SEQ_IN=${SEQ_PSQL[1]}
SEQ_OUT=${SEQ_PSQL[0]}
echo '\o /dev/null' >&"$SEQ_IN"
SEQ_REQ=0 SEQ_STMT=0 SEQ_FETCH_US=0 SEQ_SPLIT_US=0 SEQ_WRITE_US=0

seq_list() {
	# seq_list <table> <url ending in ? or &> <objects expected>: offset pages
	# until a short one, each page's records one statement each
	local t=$1 url=$2 max=$(($3 / SEQ_PAGE + 3)) o=0 i n a b c d line got
	local f=$SEQ/page.json s=$SEQ/page.sql
	for ((i = 0; i < max; i++)); do
		a=${EPOCHREALTIME/./}
		curl -s --no-progress-meter --fail --max-time 120 -H @"$OUT/headers.txt" -o "$f" \
			"${url}limit=$SEQ_PAGE&offset=$o"
		b=${EPOCHREALTIME/./}
		printf '%s\t%s\t%s\n' "$t" "$f" "$s" >&"$SPLIT_IN"
		IFS= read -r -t 120 n <&"$SPLIT_OUT" && [[ "$n" =~ ^[0-9]+$ ]] \
			|| { echo "(d): the page of $t at offset $o was not split" >&2; exit 1; }
		c=${EPOCHREALTIME/./}
		printf '\\i %s\n\\echo seq-page-written\n' "$s" >&"$SEQ_IN"
		got=
		while IFS= read -r -t 600 line <&"$SEQ_OUT"; do
			[ "$line" = seq-page-written ] && { got=1; break; }
			echo "(d) psql: $line" >&2
		done
		[ -n "$got" ] || { echo "(d): psql stopped writing $t at offset $o" >&2; exit 1; }
		d=${EPOCHREALTIME/./}
		SEQ_FETCH_US=$((SEQ_FETCH_US + b - a))
		SEQ_SPLIT_US=$((SEQ_SPLIT_US + c - b))
		SEQ_WRITE_US=$((SEQ_WRITE_US + d - c))
		SEQ_REQ=$((SEQ_REQ + 1))
		SEQ_STMT=$((SEQ_STMT + n))
		[ "$n" -lt "$SEQ_PAGE" ] && return 0
		o=$((o + SEQ_PAGE))
	done
	echo "(d): $t did not end after $max pages" >&2
	exit 1
}

t0=$(now)
c0=$(cpu_busy)
seq_list users "$MOCK_URL/users?" $SEQ_USERS
seq_list organizations "$MOCK_URL/organizations?include_members_count=true&" $SEQ_ORGS
seq_list organization_members "$MOCK_URL/organization_memberships?" $SEQ_MEMS
t1=$(now)
SEQ_SECS=$(printf '%.2f' "$(elapsed "$t0" "$t1")")
SEQ_BUSY=$(busy_pct "$c0" "$(cpu_busy)" "$SEQ_SECS" 2>/dev/null || true)
exec {SEQ_IN}>&- {SPLIT_IN}>&- {SPLIT_OUT}<&-
wait "$SEQ_PSQL_PID" 2>/dev/null || true
wait "$SPLIT_PID" 2>/dev/null || true
rm -f "$OUT/headers.txt"
rm -rf "$SEQ"
SEQ_ROWS=$($PSQL -c "SELECT (SELECT count(*) FROM clerk.users) + (SELECT count(*) FROM clerk.organizations) + (SELECT count(*) FROM clerk.organization_members)")
us_s() { echo "scale=1; $1 / 1000000" | bc; }
SEQ_SPLIT="$(us_s $SEQ_FETCH_US) s fetching, $(us_s $SEQ_SPLIT_US) s splitting, $(us_s $SEQ_WRITE_US) s writing ($(ratio "$SEQ_WRITE_US" "$((SEQ_STMT * 1000))") ms per record)"
# the extension on the same slice
sync32 slice SLICE

# ---- writing to Clerk: the write-back worker against the rate-limit floor ----
# The worker runs with the server's settings, so they go in with ALTER SYSTEM
# (the key through the same file).  WB_CHANGES metadata changes of as many
# users, queued in one transaction; timed from the commit until none is
# pending, against the floor: WB_CHANGES requests at $LIMIT per 10 s.
WB_CHANGES=$((SEQ_USERS < 1000 ? SEQ_USERS : 1000))
$PSQL >/dev/null <<-EOF
	ALTER SYSTEM SET clerk_sync.api_url = '$MOCK_URL';
	ALTER SYSTEM SET clerk_sync.secret_key_file = '$OUT/bench.key';
	ALTER SYSTEM SET clerk_sync.rate_limit = $LIMIT;
	ALTER SYSTEM SET clerk_sync.concurrency = $CONC_NEW;
	SELECT pg_reload_conf();
	TRUNCATE clerk.changes;
	DROP TABLE IF EXISTS bench_users, bench_orders;
	CREATE TABLE bench_users AS
	    SELECT row_number() OVER (ORDER BY id) AS n, id FROM clerk.users WHERE deleted_at IS NULL ORDER BY id LIMIT $WB_CHANGES;
	CREATE INDEX ON bench_users (n);
	CREATE TABLE bench_orders AS SELECT n AS id, 0 AS paid FROM bench_users;
	ALTER TABLE bench_orders ADD PRIMARY KEY (id);
EOF
sleep 1
# (each config call empties the mock's rate window)
mock_config "\"latency_ms\": $LATENCY, \"offset_cost_us\": 0"
curl -s --max-time 10 -X DELETE "${MOCK_URL%/v1}/__mock/stats" >/dev/null
mock_wb0=$(proc_cpu "$MOCK_PID")
t0=$(now)
$PSQL -c "SELECT count(clerk.merge_user_metadata(id, public => jsonb_build_object('bench', n))) FROM bench_users" >/dev/null
deadline=$((SECONDS + SYNC_TIMEOUT))
while [ "$($PSQL -c "SELECT count(*) FROM clerk.changes WHERE status = 'pending'")" != 0 ]; do
	[ $SECONDS -lt $deadline ] || { echo "the write-back did not finish within ${SYNC_TIMEOUT}s" >&2; exit 1; }
	sleep 0.1
done
t1=$(now)
WB_SECS=$(printf '%.2f' "$(elapsed "$t0" "$t1")")
WB_MOCK_CPU=$(echo "$(proc_cpu "$MOCK_PID") - $mock_wb0" | bc)
WB_SENT=$($PSQL -c "SELECT count(*) FROM clerk.changes WHERE status = 'sent'")
WB_ATTEMPTS=$($PSQL -c "SELECT sum(attempts) FROM clerk.changes")
WB_429=$(curl -s --max-time 10 "${MOCK_URL%/v1}/__mock/stats" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("rate_limited", 0))')
WB_FLOOR=$(echo "scale=2; $WB_CHANGES * 10 / $LIMIT" | bc)
WB_RATIO=$(ratio "$WB_SECS" "$WB_FLOOR")

# What queuing costs the caller: the same transaction (an UPDATE of one row
# of an application's table) with and without a queued change, 1,000 of
# each by pgbench, one client; the median of the per-transaction latencies.
PGBENCH=$(dirname "$(command -v psql)")/pgbench
cat >"$OUT/wb-without.sql" <<-EOF
	\set i random(1, $WB_CHANGES)
	BEGIN;
	UPDATE bench_orders SET paid = paid + 1 WHERE id = :i;
	SELECT id FROM bench_users WHERE n = :i;
	COMMIT;
EOF
cat >"$OUT/wb-with.sql" <<-EOF
	\set i random(1, $WB_CHANGES)
	BEGIN;
	UPDATE bench_orders SET paid = paid + 1 WHERE id = :i;
	SELECT clerk.merge_user_metadata(id, public => '{"paid": true}') FROM bench_users WHERE n = :i;
	COMMIT;
EOF
median_ms() {
	# median_ms script: the median of pgbench's per-transaction latencies (µs, its log's 3rd column), in ms
	rm -f "$OUT"/pgbench_log.*
	(cd "$OUT" && "$PGBENCH" -n -c 1 -t 1000 -l -f "$1" postgres >"$OUT/pgbench.out" 2>&1) \
		|| { echo "pgbench $1 failed" >&2; cat "$OUT/pgbench.out" >&2; exit 1; }
	awk '{print $3}' "$OUT"/pgbench_log.* | sort -n | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)] / 1000}'
}
WB_WITHOUT_MS=$(median_ms "$OUT/wb-without.sql")
WB_WITH_MS=$(median_ms "$OUT/wb-with.sql")
WB_EXTRA_MS=$(echo "scale=3; $WB_WITH_MS - $WB_WITHOUT_MS" | bc)
$PSQL >/dev/null <<-EOF
	ALTER SYSTEM RESET ALL;
	SELECT pg_reload_conf();
EOF

# ---------------------------------------------------------------------------
# (e) the peer: what a Clerk user writes instead of this extension,
# bench/peer/sync.mjs on Clerk's official SDK (the versions in
# bench/peer/package-lock.json): @clerk/backend's list calls, pages of 500 by
# offset, 8 in flight, one INSERT ... SELECT ... FROM jsonb_array_elements($1)
# ON CONFLICT ... DO UPDATE ... WHERE raw IS DISTINCT FROM EXCLUDED.raw per
# page into plain tables (schema peer).  The standard data set, without and
# with the offset cost (as OC_OFF and OC_ON), each on empty tables; the time
# is the script's own, from its first request to its last write.  A peer
# that cannot run (no Node.js 20.9, no npm registry) leaves its rows "failed"
# and the rest of the table stands.
PEER_SH=$WORK/bench/peer/run.sh
PEER_VERSIONS=$("$PYTHON" -c 'import json, sys; print(", ".join(f"{k} {v}" for k, v in json.load(open(sys.argv[1]))["dependencies"].items()))' "$WORK/bench/peer/package.json")
PEER_READY=1
# npm ci (once) before any clock starts
bash "$PEER_SH" --install || { echo "(e): the peer's packages did not install" >&2; PEER_READY=; }
# peer_run <label> <array>: the peer schema dropped, one run; <array> gets
# (seconds, requests, 429s, rows, CPU busy %), or (failed)
peer_run() {
	local -n _p=$2
	local c0 secs busy req r429 rows
	_p=(failed)
	[ -n "$PEER_READY" ] || return 0
	$PSQL -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS peer CASCADE" -c "CHECKPOINT" >/dev/null
	c0=$(cpu_busy)
	if secs=$(PGDATABASE=postgres PEER_JSON="$OUT/peer-$1.json" timeout "$SYNC_TIMEOUT" \
		bash "$PEER_SH" "$MOCK_URL" "$OUT/bench.key"); then
		busy=$(busy_pct "$c0" "$(cpu_busy)" "$secs" 2>/dev/null || true)
		read -r req r429 rows < <("$PYTHON" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["requests"], r["rate_limited"], sum(r["rows"].values()))' "$OUT/peer-$1.json" || echo "? ? ?")
		_p=("$secs" "$req" "$r429" "$rows" "$busy")
	else
		echo "(e) peer run $1 failed" >&2
	fi
}
peer_cell() {
	local -n _c=$1
	if [ "${_c[0]}" = failed ]; then echo failed; return; fi
	echo "${_c[0]} s (CPU busy: ${_c[4]}%; ${_c[1]} requests, ${_c[2]} 429s, ${_c[3]} rows)"
}
start_mock $SCALE $ORGS $MEMS
mock_config '"offset_cost_us": 0'
peer_run off PEER_OFF
mock_config "\"offset_cost_us\": $OFFSET_COST"
peer_run on PEER_ON
$PSQL -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS peer CASCADE" >/dev/null
stop_mock
PEER_RATIO_ON=$(ratio "${PEER_ON[0]}" "${OC_ON[0]}")
PEER_RATIO_OFF=$(ratio "${PEER_OFF[0]}" "${OC_OFF[0]}")
# ---------------------------------------------------------------------------

SLOWER=$(echo "if ($FETCH_SECS > $WRITE_SECS) $FETCH_SECS else $WRITE_SECS" | bc)
RATIO=$(echo "scale=2; ${FULL[0]} / $SLOWER" | bc)
RSS_RATIO=$(echo "scale=2; ${FULL[4]} / $SMALL_RSS" | bc)
RPS=$(echo "${FULL[1]} / ${FULL[0]}" | bc)
OC_RATIO=$(ratio "${OC_ON[0]}" "${OC_OFF[0]}")
OC_GROWTH=$(ratio "${OC_ON[0]}" "${OC_SMALL[0]}")
COPY_RATIO=$(ratio "$WRITE_SECS" "$COPY_SECS")
if [[ "${RL[1]}" =~ ^[0-9]+$ ]]; then
	RL_FLOOR=$(echo "scale=2; ${RL[1]} * 10 / $LIMIT" | bc)
	RL_BOUND=$(echo "if ($RL_FLOOR > $WRITE_SECS) $RL_FLOOR else $WRITE_SECS" | bc)
else
	RL_FLOOR=n/a RL_BOUND=$WRITE_SECS
fi
RL_RATIO=$(ratio "${RL[0]}" "$RL_BOUND")
SEQ_RATIO=$(ratio "$SEQ_SECS" "${SLICE[0]}")

{
	echo "| measurement | value |"
	echo "|---|---|"
	echo "| data set | $SCALE users, $ORGS organizations, $MEMS memberships |"
	echo "| mock | ${LATENCY} ms added per request, $LIMIT requests per 10 s |"
	echo "| clerk_sync.entities (optional entities listed) | ${BENCH_ENTITIES:-all} |"
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
	echo "| full sync / slower of (a), (b) | **$RATIO** (target at most 1.2) |"
	echo "| worker peak private RSS (RssAnon), $SMALL users | $SMALL_RSS MB (sync took $SMALL_SECS s) |"
	echo "| worker peak private RSS (RssAnon), $SCALE / $SMALL users | **$RSS_RATIO** (flat means it does not grow with the data) |"
	echo "| (c) COPY FROM alone (b's $COPIED rows from files into empty copies, one transaction per table) | $COPY_SECS s (CPU busy: ${COPY_BUSY}%) |"
	echo "| (b) write alone / (c) COPY FROM | **$COPY_RATIO** (target at most 1.0) |"
	echo "| concurrency $CONC_NEW, no offset cost: full sync | $(run_cell OC_OFF) |"
	echo "| concurrency $CONC_NEW, offset cost $OFFSET_COST µs per skipped row: full sync | $(run_cell OC_ON) |"
	echo "| offset cost: full sync with / without | **$OC_RATIO** (target at most 1.2) |"
	echo "| offset cost, concurrency $CONC_NEW: full sync of $SMALL users | $(run_cell OC_SMALL) |"
	echo "| offset cost: full sync, $SCALE / $SMALL users | **$OC_GROWTH** (target at most 12: time grows linearly) |"
	echo "| ${RL_LATENCY} ms latency, concurrency $CONC_NEW: full sync | $(run_cell RL) |"
	echo "| rate-limit floor: requests / ($LIMIT per 10 s) | $RL_FLOOR s (${RL[1]} requests) |"
	echo "| ${RL_LATENCY} ms sync / slower of floor, (b) write alone | **$RL_RATIO** (target at most 1.3) |"
	echo "| (d) sequential reference ($SEQ_USERS users, $SEQ_ORGS organizations, $SEQ_MEMS memberships; curl, one request at a time, $SEQ_PAGE per page by offset; one INSERT ... ON CONFLICT DO UPDATE per record) | $SEQ_SECS s (CPU busy: ${SEQ_BUSY}%); $SEQ_REQ requests, $SEQ_STMT statements, $SEQ_ROWS rows; $SEQ_SPLIT |"
	echo "| full sync of the same slice, concurrency $CONC_NEW | $(run_cell SLICE) |"
	echo "| (d) / full sync of the slice | **$SEQ_RATIO** (target at least 20) |"
	echo "| (e) peer: @clerk/backend script ($PEER_VERSIONS; pages of $PAGE by offset, 8 in flight, one INSERT ... SELECT ... ON CONFLICT DO UPDATE per page), offset cost $OFFSET_COST µs per skipped row / without | $(peer_cell PEER_ON) / $(peer_cell PEER_OFF) |"
	echo "| (e) / full sync (concurrency $CONC_NEW), offset cost / without | **$PEER_RATIO_ON** / **$PEER_RATIO_OFF** (target at least 3 / 2) |"
	echo "| write-back: $WB_CHANGES metadata changes of $WB_CHANGES users queued in one transaction, until none is pending | $WB_SECS s; $WB_SENT sent, $WB_ATTEMPTS attempts, $WB_429 429s; mock CPU $WB_MOCK_CPU s |"
	echo "| write-back rate-limit floor: $WB_CHANGES requests / ($LIMIT per 10 s) | $WB_FLOOR s |"
	echo "| write-back / its floor | **$WB_RATIO** (target at most 1.2) |"
	echo "| a transaction (UPDATE of one row) with one queued change / without, median of 1000 each (pgbench) | $WB_WITH_MS ms / $WB_WITHOUT_MS ms: **+$WB_EXTRA_MS ms** (target at most 1 ms) |"
} | tee "$OUT/bench.md"
