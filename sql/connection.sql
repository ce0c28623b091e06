-- clerk_test_connection() without the network, and the settings it uses.
-- Answers from the mock Clerk API are checked in t/010_connection.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

-- an unreachable host: ok false, no status
SELECT clerk_set_secret_key('sk_test_mock_connection_only');
SET clerk_sync.api_url = 'http://127.0.0.1:1/v1';
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r ->> 'error' LIKE 'request /users/count failed: %' AS error_says_failed
FROM clerk_test_connection() r;
RESET clerk_sync.api_url;
SELECT clerk_set_secret_key('');
-- without a key: the result says how to configure one
SELECT clerk_test_connection() ->> 'error' AS no_key;

-- no setting holds a secret: the 1.0 settings refuse any value, without repeating it
SET clerk_sync.secret_key = 'sk_test_mock_never_stored';
SET clerk_sync.webhook_secret = 'whsec_dGVzdF9mYWtlX25ldmVyX3N0b3JlZF9zZWNyZXQ=';
ALTER SYSTEM SET clerk_sync.secret_key = 'sk_test_mock_never_stored';
ALTER DATABASE contrib_regression SET clerk_sync.secret_key = 'sk_test_mock_never_stored';
SELECT count(*) AS stored_anywhere FROM pg_db_role_setting WHERE array_to_string(setconfig, ' ') LIKE '%never_stored%';
-- a key file must be the server's own and readable by no one else (this one is world-readable)
SET clerk_sync.secret_key_file = '/etc/passwd';
SELECT clerk_test_connection() ->> 'ok';
RESET clerk_sync.secret_key_file;

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
