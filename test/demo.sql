-- What `make demo` runs once the cluster and the mock (or a real Clerk) are up.
\pset footer off
CREATE EXTENSION clerk_sync;
\echo
\echo == clerk_test_connection()
SELECT jsonb_pretty(clerk_test_connection() - 'latency_ms') AS connection;
