-- clerk_sync install script, assembled from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION clerk_sync" to load this file. \quit

-- Data lives in schema clerk; the functions live in the extension's schema.
CREATE SCHEMA clerk;
COMMENT ON SCHEMA clerk IS 'Users, organizations and memberships synced from Clerk';

CREATE TABLE clerk.users (
    id                  text PRIMARY KEY,
    external_id         text,
    username            text,
    first_name          text,
    last_name           text,
    primary_email       text,
    email_addresses     text[] NOT NULL DEFAULT '{}',
    primary_phone       text,
    image_url           text,
    banned              boolean NOT NULL DEFAULT false,
    locked              boolean NOT NULL DEFAULT false,
    public_metadata     jsonb NOT NULL DEFAULT '{}',
    private_metadata    jsonb NOT NULL DEFAULT '{}',
    unsafe_metadata     jsonb NOT NULL DEFAULT '{}',
    last_sign_in_at     timestamptz,
    last_active_at      timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX users_primary_email_idx ON clerk.users (lower(primary_email));
CREATE INDEX users_external_id_idx ON clerk.users (external_id) WHERE external_id IS NOT NULL;
COMMENT ON TABLE clerk.users IS 'Clerk users; raw holds the whole object, deleted_at marks users gone from Clerk';

CREATE TABLE clerk.organizations (
    id                      text PRIMARY KEY,
    name                    text,
    slug                    text,
    image_url               text,
    members_count           integer,
    max_allowed_memberships integer,
    admin_delete_enabled    boolean,
    created_by              text,
    public_metadata         jsonb NOT NULL DEFAULT '{}',
    private_metadata        jsonb NOT NULL DEFAULT '{}',
    created_at              timestamptz,
    updated_at              timestamptz,
    raw                     jsonb NOT NULL,
    synced_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);
CREATE INDEX organizations_slug_idx ON clerk.organizations (slug);
COMMENT ON TABLE clerk.organizations IS 'Clerk organizations; raw holds the whole object, deleted_at marks organizations gone from Clerk';

-- No foreign keys: a page of memberships must not fail because its user
-- arrives on a later page.  clerk_database_summary() reports orphans.
CREATE TABLE clerk.organization_members (
    id                  text PRIMARY KEY,
    organization_id     text NOT NULL,
    user_id             text,
    role                text,
    role_name           text,
    permissions         text[] NOT NULL DEFAULT '{}',
    public_metadata     jsonb NOT NULL DEFAULT '{}',
    private_metadata    jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX organization_members_organization_id_idx ON clerk.organization_members (organization_id);
CREATE INDEX organization_members_user_id_idx ON clerk.organization_members (user_id);
COMMENT ON TABLE clerk.organization_members IS 'Clerk organization memberships; raw holds the whole object';

-- One row per sync run.
CREATE TABLE clerk.sync_runs (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'incremental')),
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed', 'canceled')),
    dry_run     boolean NOT NULL DEFAULT false,
    started_by  text NOT NULL DEFAULT current_user,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    error       text,
    error_code  text,
    stats       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX sync_runs_started_at_idx ON clerk.sync_runs (started_at);
COMMENT ON TABLE clerk.sync_runs IS 'One row per sync run: status, error and per-entity counts';

-- Who did what and when; never holds a secret.
CREATE TABLE clerk.audit_logs (
    id              bigserial PRIMARY KEY,
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor           text NOT NULL DEFAULT current_user,
    action          text NOT NULL,
    entity_type     text,
    entity_id       text,
    organization_id text,
    run_id          bigint,
    details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_logs_occurred_at_idx ON clerk.audit_logs (occurred_at);
CREATE INDEX audit_logs_run_id_idx ON clerk.audit_logs (run_id) WHERE run_id IS NOT NULL;
COMMENT ON TABLE clerk.audit_logs IS 'Audit trail of runs, record errors and administrative actions; never holds a secret';

SELECT pg_catalog.pg_extension_config_dump('clerk.users', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.organizations', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.organization_members', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.sync_runs', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.sync_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.audit_logs', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.audit_logs_id_seq', '');
-- The mapping from Clerk's JSON to rows.  This is the only place that knows
-- which JSON field feeds which column: the sync and the webhooks both write
-- through these functions.
--
-- Each takes a page as Clerk sends it (a bare array, an object with a "data"
-- array) or a single object, and yields one row per object.  Clerk sends
-- timestamps as Unix milliseconds.

CREATE FUNCTION clerk.objects(page jsonb)
RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT o
    FROM pg_catalog.jsonb_array_elements(
        CASE pg_catalog.jsonb_typeof(page)
            WHEN 'array' THEN page
            WHEN 'object' THEN
                CASE WHEN pg_catalog.jsonb_typeof(page -> 'data') = 'array'
                     THEN page -> 'data'
                     ELSE pg_catalog.jsonb_build_array(page) END
            ELSE '[]'::jsonb
        END) AS o
$$;
COMMENT ON FUNCTION clerk.objects(jsonb) IS 'The objects of a Clerk page: a bare array, {data: [...]} or one object';

CREATE FUNCTION clerk.ms_to_timestamptz(ms jsonb)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.to_timestamp((ms #>> '{}')::numeric / 1000)
$$;

-- Elements of a JSON array, or none when the value is not an array.
CREATE FUNCTION clerk.array_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(v) = 'array' THEN v ELSE '[]'::jsonb END
$$;

-- A metadata object; JSON null or a missing field become {}.
CREATE FUNCTION clerk.object_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN v IS NULL OR v = 'null'::jsonb THEN '{}'::jsonb ELSE v END
$$;

CREATE FUNCTION clerk.map_users(page jsonb)
RETURNS SETOF clerk.users
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'external_id',
        o ->> 'username',
        o ->> 'first_name',
        o ->> 'last_name',
        (SELECT e ->> 'email_address'
           FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'email_addresses')) e
          WHERE e ->> 'id' = o ->> 'primary_email_address_id'
          LIMIT 1),
        ARRAY(SELECT e ->> 'email_address'
                FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'email_addresses'))
                     WITH ORDINALITY AS a(e, n)
               WHERE e ->> 'email_address' IS NOT NULL
               ORDER BY n),
        (SELECT p ->> 'phone_number'
           FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'phone_numbers')) p
          WHERE p ->> 'id' = o ->> 'primary_phone_number_id'
          LIMIT 1),
        o ->> 'image_url',
        coalesce((o ->> 'banned')::boolean, false),
        coalesce((o ->> 'locked')::boolean, false),
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.object_or_empty(o -> 'unsafe_metadata'),
        clerk.ms_to_timestamptz(o -> 'last_sign_in_at'),
        clerk.ms_to_timestamptz(o -> 'last_active_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_users(jsonb) IS 'Rows of clerk.users from Clerk user objects';

CREATE FUNCTION clerk.map_organizations(page jsonb)
RETURNS SETOF clerk.organizations
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'name',
        o ->> 'slug',
        o ->> 'image_url',
        (o ->> 'members_count')::integer,
        (o ->> 'max_allowed_memberships')::integer,
        (o ->> 'admin_delete_enabled')::boolean,
        o ->> 'created_by',
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_organizations(jsonb) IS 'Rows of clerk.organizations from Clerk organization objects';

CREATE FUNCTION clerk.map_memberships(page jsonb)
RETURNS SETOF clerk.organization_members
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        coalesce(o -> 'organization' ->> 'id', o ->> 'organization_id'),
        coalesce(o -> 'public_user_data' ->> 'user_id', o ->> 'user_id'),
        o ->> 'role',
        o ->> 'role_name',
        ARRAY(SELECT p FROM pg_catalog.jsonb_array_elements_text(clerk.array_or_empty(o -> 'permissions'))
                     WITH ORDINALITY AS a(p, n) ORDER BY n),
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_memberships(jsonb) IS 'Rows of clerk.organization_members from Clerk organization membership objects';
CREATE FUNCTION clerk_test_connection()
RETURNS jsonb
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_test_connection';
COMMENT ON FUNCTION clerk_test_connection() IS 'Ask Clerk for the user count once: is the API reachable and the key accepted? Never shows the key';
-- The credentials vault: third-party API credentials per organization and
-- the Clerk secret key, encrypted with libsodium under a key the server
-- loads at start (see doc/credentials.md).  No table has a plaintext
-- column, and no function returns a key or a ciphertext except
-- clerk_get_credentials(), which only explicitly granted roles may call.

CREATE TABLE clerk.api_credentials (
    id                      bigserial PRIMARY KEY,
    organization_id         text NOT NULL,
    service_name            text NOT NULL,
    credentials_encrypted   bytea NOT NULL,
    key_id                  integer NOT NULL CHECK (key_id > 0),
    is_active               boolean NOT NULL DEFAULT true,
    created_by              text NOT NULL DEFAULT current_user,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
-- At most one active credential per organization and service; replaced
-- ones stay, deactivated, for the audit trail.
CREATE UNIQUE INDEX api_credentials_active_idx
    ON clerk.api_credentials (organization_id, service_name) WHERE is_active;
CREATE INDEX api_credentials_key_id_idx ON clerk.api_credentials (key_id);
COMMENT ON TABLE clerk.api_credentials IS 'Third-party API credentials per organization and service, encrypted; read them with clerk_get_credentials()';
COMMENT ON COLUMN clerk.api_credentials.credentials_encrypted IS 'XChaCha20-Poly1305 ciphertext bound to organization_id, service_name and key_id';
COMMENT ON COLUMN clerk.api_credentials.key_id IS 'Id of the encryption key in the key ring that encrypted the row';

CREATE TABLE clerk.secrets (
    name            text PRIMARY KEY CHECK (name IN ('clerk_secret_key', 'webhook_secret')),
    value_encrypted bytea NOT NULL,
    key_id          integer NOT NULL CHECK (key_id > 0),
    set_by          text NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE clerk.secrets IS 'Secrets of clerk_sync itself, encrypted; set with clerk_set_secret_key(), never returned to SQL';

SELECT pg_catalog.pg_extension_config_dump('clerk.api_credentials', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.api_credentials_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.secrets', '');

CREATE FUNCTION clerk_store_credentials(organization_id text, service_name text, credentials jsonb)
RETURNS bigint
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_store_credentials';
COMMENT ON FUNCTION clerk_store_credentials(text, text, jsonb) IS 'Validate and store encrypted credentials for an organization and a service (cliniko, chatwoot), replacing the active ones; returns the new id';

CREATE FUNCTION clerk_get_credentials(organization_id text, service_name text)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_get_credentials';
COMMENT ON FUNCTION clerk_get_credentials(text, text) IS 'Decrypt the active credentials of an organization for a service, or NULL; every read is audited';

CREATE FUNCTION clerk_list_credentials()
RETURNS TABLE (
    id              bigint,
    organization_id text,
    service_name    text,
    is_active       boolean,
    key_id          integer,
    created_by      text,
    created_at      timestamptz,
    updated_at      timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT c.id, c.organization_id, c.service_name, c.is_active, c.key_id,
           c.created_by, c.created_at, c.updated_at
      FROM clerk.api_credentials AS c
     ORDER BY c.organization_id, c.service_name, c.id
$$;
COMMENT ON FUNCTION clerk_list_credentials() IS 'Stored credentials without secrets or ciphertexts: organization, service, state, key id and who stored them when';

CREATE FUNCTION clerk_deactivate_credentials(organization_id text, service_name text)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_deactivate_credentials';
COMMENT ON FUNCTION clerk_deactivate_credentials(text, text) IS 'Deactivate the active credentials of an organization for a service; false if there were none';

CREATE FUNCTION clerk_rotate_encryption_key()
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_rotate_encryption_key';
COMMENT ON FUNCTION clerk_rotate_encryption_key() IS 'Re-encrypt every stored credential and secret under the newest key id, in one transaction; returns how many were re-encrypted';

CREATE FUNCTION clerk_set_secret_key(key text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_set_secret_key';
COMMENT ON FUNCTION clerk_set_secret_key(text) IS 'Store the Clerk secret key encrypted, preferred by the sync over clerk_sync.secret_key; an empty string removes it; never returned';

-- pgcrypto-compatible digests, computed with libsodium: same arguments and
-- byte-identical results as pgcrypto's digest() and hmac().
CREATE FUNCTION clerk_digest(data bytea, type text)
RETURNS bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_digest';
COMMENT ON FUNCTION clerk_digest(bytea, text) IS 'sha256 or sha512 digest, byte-identical to pgcrypto''s digest()';

CREATE FUNCTION clerk_digest(data text, type text)
RETURNS bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_digest';
COMMENT ON FUNCTION clerk_digest(text, text) IS 'sha256 or sha512 digest of the text''s bytes, byte-identical to pgcrypto''s digest()';

CREATE FUNCTION clerk_hmac(data bytea, key bytea, type text)
RETURNS bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_hmac';
COMMENT ON FUNCTION clerk_hmac(bytea, bytea, text) IS 'HMAC with sha256 or sha512, byte-identical to pgcrypto''s hmac()';

CREATE FUNCTION clerk_hmac(data text, key text, type text)
RETURNS bytea
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_hmac';
COMMENT ON FUNCTION clerk_hmac(text, text, text) IS 'HMAC with sha256 or sha512 of the text''s bytes, byte-identical to pgcrypto''s hmac()';

-- Nothing here is for PUBLIC.  An administrator grants what each role
-- needs; clerk_get_credentials() in particular only to the roles that must
-- see secrets (doc/credentials.md, "Permissions").
REVOKE ALL ON TABLE clerk.api_credentials, clerk.secrets FROM PUBLIC;
REVOKE ALL ON SEQUENCE clerk.api_credentials_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_store_credentials(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_get_credentials(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_list_credentials() FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_deactivate_credentials(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_rotate_encryption_key() FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_set_secret_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_digest(bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_digest(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_hmac(bytea, bytea, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_hmac(text, text, text) FROM PUBLIC;
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
CREATE FUNCTION clerk_apply_page(entity text, page jsonb)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_apply_page';
COMMENT ON FUNCTION clerk_apply_page(text, jsonb) IS 'Write one page of Clerk JSON (users, organizations or memberships) through the sync''s write path';
-- Clerk webhooks, verified (Svix signatures) and applied in the database
-- through the same write path as the sync (see doc/webhooks.md).

-- Deliveries already applied, by Svix message id: a retried delivery is
-- found here and applied once.  Pruned after clerk_sync.log_retention.
CREATE TABLE clerk.webhook_deliveries (
    svix_id     text PRIMARY KEY,
    event_type  text NOT NULL,
    object_id   text,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    result      text NOT NULL,
    outcome     text
);
CREATE INDEX webhook_deliveries_received_at_idx ON clerk.webhook_deliveries (received_at);
COMMENT ON TABLE clerk.webhook_deliveries IS 'Webhook deliveries applied, by svix-id, for deduplication; result is what clerk_handle_webhook() returned, outcome what it did to the row';
COMMENT ON COLUMN clerk.webhook_deliveries.outcome IS 'inserted, updated, unchanged, stale (the stored row is newer), gone (the row is deleted), deleted or tombstone; NULL for ignored event types';

SELECT pg_catalog.pg_extension_config_dump('clerk.webhook_deliveries', '');

CREATE FUNCTION clerk_handle_webhook(body text, svix_id text, svix_timestamp text, svix_signature text)
RETURNS text
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_handle_webhook';
COMMENT ON FUNCTION clerk_handle_webhook(text, text, text, text) IS 'Verify (Svix signature) and apply one Clerk webhook delivery; returns the event type applied, duplicate, or ignored:<type>';

CREATE FUNCTION clerk_set_webhook_secret(secret text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_set_webhook_secret';
COMMENT ON FUNCTION clerk_set_webhook_secret(text) IS 'Store the webhook signing secret (whsec_...) encrypted, preferred over clerk_sync.webhook_secret; an empty string removes it; never returned';

-- Nothing here is for PUBLIC: grant clerk_handle_webhook() to the role the
-- HTTP endpoint connects as; it needs no table privileges.
REVOKE ALL ON TABLE clerk.webhook_deliveries FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_handle_webhook(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clerk_set_webhook_secret(text) FROM PUBLIC;
-- Nothing is usable by PUBLIC: an administrator grants what each role needs
-- (see README, "Permissions").
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT d.objid::regprocedure
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE e.extname = 'clerk_sync'
           AND d.classid = 'pg_catalog.pg_proc'::regclass
           AND d.deptype = 'e'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA clerk FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA clerk FROM PUBLIC;
REVOKE ALL ON SCHEMA clerk FROM PUBLIC;
