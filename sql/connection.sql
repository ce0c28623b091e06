-- clerk_test_connection() against the mock Clerk API the harness started
-- (clerk_sync.api_url and clerk_sync.secret_key are set in postgresql.conf).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, (r ->> 'users_total')::int > 0 AS has_users,
       r ->> 'error' AS error, (r ->> 'latency_ms')::numeric >= 0 AS timed,
       r ->> 'api_url' = current_setting('clerk_sync.api_url') AS same_url
FROM clerk_test_connection() r;

-- the result never holds the key
SELECT position(current_setting('clerk_sync.secret_key') IN clerk_test_connection()::text) AS key_position;

-- a wrong key: ok false, HTTP 401, an error that says so, and not the key
SET clerk_sync.secret_key = 'sk_test_mock_wrong_key';
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r ->> 'error' AS error,
       position('sk_test_mock_wrong_key' IN r::text) AS key_position
FROM clerk_test_connection() r;
RESET clerk_sync.secret_key;

-- an unreachable host: ok false, no status
SET clerk_sync.api_url = 'http://127.0.0.1:1/v1';
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r ->> 'error' LIKE 'request /users/count failed: %' AS error_says_failed
FROM clerk_test_connection() r;
RESET clerk_sync.api_url;

-- only http and https, and no credentials in the URL
SET clerk_sync.api_url = 'ftp://example.com/v1';
SET clerk_sync.api_url = 'https://user:pw@example.com/v1';
SET clerk_sync.page_size = 501;

-- settings a non-superuser may not see
CREATE ROLE clerk_regress_nobody;
SET ROLE clerk_regress_nobody;
SHOW clerk_sync.secret_key;
SELECT count(*) FROM pg_settings WHERE name = 'clerk_sync.secret_key';
SELECT clerk_test_connection();
RESET ROLE;
DROP ROLE clerk_regress_nobody;
