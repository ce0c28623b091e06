CREATE FUNCTION clerk_test_connection()
RETURNS jsonb
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_test_connection';
COMMENT ON FUNCTION clerk_test_connection() IS 'Ask Clerk for the user count once: is the API reachable and the key accepted? Never shows the key';
