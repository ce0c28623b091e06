-- clerk_sync 1.0 -> 1.1.  A fresh install of 1.1 runs clerk_sync--1.0.sql
-- and then this script, so it holds every change of 1.1 (see Makefile and
-- CHANGELOG.md).  Sections by concern; privileges at the end.
\echo Use "ALTER EXTENSION clerk_sync UPDATE TO '1.1'" to load this file. \quit

-- ---- versions -------------------------------------------------------------

CREATE FUNCTION clerk_library_version()
RETURNS text
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'clerk_library_version';
COMMENT ON FUNCTION clerk_library_version() IS 'Version of the clerk_sync library the server runs (the SQL version is pg_extension.extversion)';

-- ---- sync runs ------------------------------------------------------------

COMMENT ON FUNCTION clerk_sync_progress() IS 'The running sync of this database, read from shared memory; clerk.sync_progress shows it';
COMMENT ON FUNCTION clerk_secret_key_configured() IS 'Whether a Clerk secret key is configured (never the key itself)';

-- clerk_status() also shows the library's and the installed SQL's versions
CREATE OR REPLACE FUNCTION clerk_status()
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'running', (SELECT pg_catalog.to_jsonb(p) FROM clerk.sync_progress p LIMIT 1),
        'last_run', (SELECT pg_catalog.to_jsonb(r) FROM clerk.sync_runs r ORDER BY id DESC LIMIT 1),
        'last_successful_run', (SELECT pg_catalog.to_jsonb(r) FROM clerk.sync_runs r
                                 WHERE status = 'succeeded' AND NOT dry_run ORDER BY id DESC LIMIT 1),
        'rows', pg_catalog.jsonb_build_object(
            'users', (SELECT count(*) FROM clerk.users WHERE deleted_at IS NULL),
            'organizations', (SELECT count(*) FROM clerk.organizations WHERE deleted_at IS NULL),
            'memberships', (SELECT count(*) FROM clerk.organization_members WHERE deleted_at IS NULL)),
        'version', pg_catalog.jsonb_build_object(
            'library', @extschema@.clerk_library_version(),
            'extension', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'clerk_sync')),
        'config', pg_catalog.jsonb_build_object(
            'api_url', pg_catalog.current_setting('clerk_sync.api_url'),
            'page_size', pg_catalog.current_setting('clerk_sync.page_size')::int,
            'rate_limit', pg_catalog.current_setting('clerk_sync.rate_limit')::int,
            'concurrency', pg_catalog.current_setting('clerk_sync.concurrency')::int,
            'request_timeout', pg_catalog.current_setting('clerk_sync.request_timeout'),
            'max_retries', pg_catalog.current_setting('clerk_sync.max_retries')::int,
            'max_delete_fraction', pg_catalog.current_setting('clerk_sync.max_delete_fraction')::float8,
            'log_retention', pg_catalog.current_setting('clerk_sync.log_retention'),
            'secret_key_configured', @extschema@.clerk_secret_key_configured()))
$$;

-- ---- privileges -----------------------------------------------------------
-- Nothing is usable by PUBLIC (see README, "Permissions").

REVOKE ALL ON FUNCTION clerk_library_version() FROM PUBLIC;
