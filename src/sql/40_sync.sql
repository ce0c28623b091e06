-- Sync runs: start, watch, cancel, and look at the results.

CREATE FUNCTION clerk_sync_all(dry_run boolean DEFAULT false, wait boolean DEFAULT true)
RETURNS clerk.sync_runs
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_all';
COMMENT ON FUNCTION clerk_sync_all(boolean, boolean) IS 'Sync every user, organization and membership from Clerk in a background worker';

CREATE FUNCTION clerk_sync_changes(wait boolean DEFAULT true)
RETURNS clerk.sync_runs
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_changes';
COMMENT ON FUNCTION clerk_sync_changes(boolean) IS 'Fetch only what changed in Clerk since the last successful run';

CREATE FUNCTION clerk_sync_cancel(run_id bigint)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_cancel';
COMMENT ON FUNCTION clerk_sync_cancel(bigint) IS 'Stop a running sync; it ends canceled and keeps what it committed';

CREATE FUNCTION clerk_sync_progress(
    OUT run_id bigint, OUT pid integer, OUT kind text, OUT dry_run boolean, OUT phase text,
    OUT pages bigint, OUT rows_done bigint, OUT rows_expected bigint, OUT requests bigint,
    OUT retries bigint, OUT rate_limit_waits bigint, OUT started_at timestamptz)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_progress';

CREATE VIEW clerk.sync_progress AS
    SELECT p.run_id, p.pid, p.kind, p.dry_run, p.phase, p.pages, p.rows_done, p.rows_expected,
           p.requests, p.retries, p.rate_limit_waits, p.started_at,
           pg_catalog.clock_timestamp() - p.started_at AS elapsed
    FROM @extschema@.clerk_sync_progress() p;
COMMENT ON VIEW clerk.sync_progress IS 'The running sync of this database, from shared memory (like pg_stat_progress_*)';

CREATE FUNCTION clerk_secret_key_configured()
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_secret_key_configured';

CREATE FUNCTION clerk_sync_logs(n integer DEFAULT 20)
RETURNS SETOF clerk.sync_runs
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT * FROM clerk.sync_runs ORDER BY id DESC LIMIT greatest(n, 0)
$$;
COMMENT ON FUNCTION clerk_sync_logs(integer) IS 'The most recent sync runs, newest first';

CREATE FUNCTION clerk_status()
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
COMMENT ON FUNCTION clerk_status() IS 'Running run, last runs, row counts and the configuration that is safe to show (never the key)';

CREATE FUNCTION clerk_database_summary(
    OUT entity text, OUT total bigint, OUT active bigint, OUT soft_deleted bigint,
    OUT last_synced timestamptz, OUT findings jsonb)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT 'users', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'without_primary_email',
               count(*) FILTER (WHERE deleted_at IS NULL AND primary_email IS NULL))
      FROM clerk.users
    UNION ALL
    SELECT 'organizations', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'members_count_mismatch',
               (SELECT count(*) FROM clerk.organizations o
                 WHERE o.deleted_at IS NULL AND o.members_count IS NOT NULL
                   AND o.members_count <> (SELECT count(*) FROM clerk.organization_members m
                                            WHERE m.organization_id = o.id AND m.deleted_at IS NULL)))
      FROM clerk.organizations
    UNION ALL
    SELECT 'memberships', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'user_missing_or_deleted',
               (SELECT count(*) FROM clerk.organization_members m
                 WHERE m.deleted_at IS NULL AND NOT EXISTS
                   (SELECT 1 FROM clerk.users u WHERE u.id = m.user_id AND u.deleted_at IS NULL)),
               'organization_missing_or_deleted',
               (SELECT count(*) FROM clerk.organization_members m
                 WHERE m.deleted_at IS NULL AND NOT EXISTS
                   (SELECT 1 FROM clerk.organizations o WHERE o.id = m.organization_id AND o.deleted_at IS NULL)))
      FROM clerk.organization_members
$$;
COMMENT ON FUNCTION clerk_database_summary() IS 'Per entity: total, active, soft-deleted, last synced, and integrity findings';

CREATE FUNCTION clerk_organizations(
    OUT id text, OUT name text, OUT slug text, OUT members_count integer,
    OUT memberships_stored bigint, OUT created_at timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT o.id, o.name, o.slug, o.members_count,
           (SELECT count(*) FROM clerk.organization_members m
             WHERE m.organization_id = o.id AND m.deleted_at IS NULL),
           o.created_at
      FROM clerk.organizations o
     WHERE o.deleted_at IS NULL
     ORDER BY o.name, o.id
$$;
COMMENT ON FUNCTION clerk_organizations() IS 'Organizations with ids, names, slugs and member counts';
