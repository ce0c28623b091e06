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
