-- What `make demo` runs once the cluster and the mock (or a real Clerk) are up.
\pset footer off
\set ON_ERROR_STOP 1
CREATE EXTENSION clerk_sync;

\echo
\echo == SELECT clerk_test_connection();
SELECT jsonb_pretty(clerk_test_connection() - 'latency_ms') AS connection;

\echo
\echo == SELECT * FROM clerk_sync_all();   (progress arrives as NOTICEs)
SELECT id, kind, status, dry_run, finished_at - started_at AS took,
       stats ->> 'requests' AS requests, stats ->> 'retries' AS retries,
       stats ->> 'deletion' AS deletion
  FROM clerk_sync_all() \gset run_
SELECT :run_id AS id, :'run_status' AS status, :'run_took' AS took,
       :'run_requests' AS requests, :'run_retries' AS retries;
SELECT e.key AS entity, e.value ->> 'fetched' AS fetched, e.value ->> 'inserted' AS inserted,
       e.value ->> 'updated' AS updated, e.value ->> 'unchanged' AS unchanged,
       e.value ->> 'deleted' AS deleted, e.value ->> 'failed' AS failed
  FROM clerk.sync_runs r, jsonb_each(r.stats) e
 WHERE r.id = :run_id AND jsonb_typeof(e.value) = 'object'
 ORDER BY array_position(ARRAY['users', 'organizations', 'memberships'], e.key);

\echo
\echo == SELECT * FROM clerk_database_summary();
SELECT * FROM clerk_database_summary();

\echo
\echo == SELECT * FROM clerk_organizations() LIMIT 5;
SELECT * FROM clerk_organizations() LIMIT 5;

\echo
\echo == a few synced users
SELECT id, first_name, last_name, primary_email, created_at
  FROM clerk.users ORDER BY created_at LIMIT 5;
