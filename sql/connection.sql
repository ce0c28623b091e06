-- clerk_test_connection() without the network, and the settings it uses.
-- Answers from the mock Clerk API are checked in t/010_connection.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

-- an unreachable host: ok false, no status
SET clerk_sync.secret_key = 'sk_test_mock_connection_only';
SET clerk_sync.api_url = 'http://127.0.0.1:1/v1';
SELECT r ->> 'ok' AS ok, r ->> 'status' AS status, r ->> 'error' LIKE 'request /users/count failed: %' AS error_says_failed
FROM clerk_test_connection() r;
RESET clerk_sync.api_url;
RESET clerk_sync.secret_key;

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
