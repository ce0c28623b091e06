-- clerk_sync 1.0 -> 1.1.  A fresh install of 1.1 runs clerk_sync--1.1.sql,
-- which make assembles from clerk_sync--1.0.sql and this script, so this
-- script holds every change of 1.1 (see Makefile and CHANGELOG.md).
-- Sections by concern; privileges at the end.
\echo Use "ALTER EXTENSION clerk_sync UPDATE TO '1.1'" to load this file. \quit

-- ---- names resolve to pg_catalog and the extension's own objects ---------
-- PostgreSQL runs this script with search_path set to the extension's
-- schema, where other roles may have created functions and operators (every
-- database created before PostgreSQL 15 lets any role CREATE in public).
-- One of theirs whose argument types fit better than a built-in's (say
-- OPERATOR public.= (text[], text[]) against pg_catalog's anyarray one)
-- would run with the rights of the superuser updating the extension.  So
-- the rest of this script resolves names in pg_catalog only (the setting
-- ends with the script); its own objects are named with their schema.
SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
-- And no trigger fires on what the update writes (the rows of clerk.users it
-- recomputes below, the vault's values it re-seals at the end): in 1.0 a
-- role granted TRIGGER on a clerk table could have put one there, which
-- would run with the rights of the superuser updating the extension.
SELECT pg_catalog.set_config('session_replication_role', 'replica', true);

-- 1.0's helpers of the mapping, which the update below runs, with every
-- operator, function and type qualified: they stay inlinable into the
-- mapping functions, and mean the same whatever the caller's search_path.
CREATE OR REPLACE FUNCTION clerk.objects(page jsonb)
RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT o
    FROM pg_catalog.jsonb_array_elements(
        CASE pg_catalog.jsonb_typeof(page)
            WHEN 'array'::pg_catalog.text THEN page
            WHEN 'object'::pg_catalog.text THEN
                CASE WHEN pg_catalog.jsonb_typeof(page OPERATOR(pg_catalog.->) 'data'::pg_catalog.text)
                          OPERATOR(pg_catalog.=) 'array'::pg_catalog.text
                     THEN page OPERATOR(pg_catalog.->) 'data'::pg_catalog.text
                     ELSE pg_catalog.jsonb_build_array(page) END
            ELSE '[]'::pg_catalog.jsonb
        END) AS o
$$;

CREATE OR REPLACE FUNCTION clerk.ms_to_timestamptz(ms jsonb)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.to_timestamp((ms OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[])::pg_catalog.numeric
                                   OPERATOR(pg_catalog./) 1000::pg_catalog.numeric)
$$;

CREATE OR REPLACE FUNCTION clerk.array_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'array'::pg_catalog.text
                THEN v ELSE '[]'::pg_catalog.jsonb END
$$;

CREATE OR REPLACE FUNCTION clerk.object_or_empty(v jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN v IS NULL OR v OPERATOR(pg_catalog.=) 'null'::pg_catalog.jsonb
                THEN '{}'::pg_catalog.jsonb ELSE v END
$$;

-- ---- versions -------------------------------------------------------------

CREATE FUNCTION @extschema@.clerk_library_version()
RETURNS text
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'clerk_library_version';
COMMENT ON FUNCTION @extschema@.clerk_library_version() IS 'Version of the clerk_sync library the server runs (the SQL version is pg_extension.extversion)';

-- ---- sync runs ------------------------------------------------------------

COMMENT ON FUNCTION @extschema@.clerk_secret_key_configured() IS 'Whether a Clerk secret key is configured (never the key itself)';

-- what a run's worker waits for, so that a stuck run shows without reading C,
-- and the concurrency the run uses now (it adapts; clerk_sync.concurrency is
-- the most it may use)
DROP VIEW clerk.sync_progress;
DROP FUNCTION @extschema@.clerk_sync_progress();
CREATE FUNCTION @extschema@.clerk_sync_progress(
    OUT run_id bigint, OUT pid integer, OUT kind text, OUT dry_run boolean, OUT phase text,
    OUT pages bigint, OUT rows_done bigint, OUT rows_expected bigint, OUT requests bigint,
    OUT retries bigint, OUT rate_limit_waits bigint, OUT started_at timestamptz,
    OUT concurrency integer)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_progress';
CREATE VIEW clerk.sync_progress AS
    SELECT p.run_id, p.pid, p.kind, p.dry_run, p.phase, p.pages, p.rows_done, p.rows_expected,
           p.requests, p.retries, p.rate_limit_waits, p.concurrency, p.started_at,
           pg_catalog.clock_timestamp() - p.started_at AS elapsed,
           a.wait_event_type, a.wait_event
    FROM @extschema@.clerk_sync_progress() p
    LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = p.pid;
COMMENT ON FUNCTION @extschema@.clerk_sync_progress() IS 'The running sync of this database, read from shared memory; clerk.sync_progress shows it';
COMMENT ON VIEW clerk.sync_progress IS 'The running sync of this database, from shared memory (like pg_stat_progress_*), with its worker''s pid and wait event';

-- ---- the mapping: identity columns hold verified identities only ---------
-- primary_email, email_addresses and primary_phone are what applications
-- match people by; an address or number a user added but never verified
-- stays in raw only.

CREATE OR REPLACE FUNCTION clerk.map_users(page jsonb)
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
            AND e -> 'verification' ->> 'status' = 'verified'
          LIMIT 1),
        ARRAY(SELECT e ->> 'email_address'
                FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'email_addresses'))
                     WITH ORDINALITY AS a(e, n)
               WHERE e ->> 'email_address' IS NOT NULL
                 AND e -> 'verification' ->> 'status' = 'verified'
               ORDER BY n),
        (SELECT p ->> 'phone_number'
           FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'phone_numbers')) p
          WHERE p ->> 'id' = o ->> 'primary_phone_number_id'
            AND p -> 'verification' ->> 'status' = 'verified'
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
COMMENT ON FUNCTION clerk.map_users(jsonb) IS 'Rows of clerk.users from Clerk user objects (identity columns: verified values only)';

-- rows stored by 1.0 get their identity columns anew from raw
UPDATE clerk.users u
   SET primary_email = m.primary_email, email_addresses = m.email_addresses, primary_phone = m.primary_phone
  FROM clerk.users o CROSS JOIN LATERAL clerk.map_users(o.raw) m
 WHERE o.id = u.id
   AND (u.primary_email, u.email_addresses, u.primary_phone) IS DISTINCT FROM
       (m.primary_email, m.email_addresses, m.primary_phone);

-- ---- the write path: records that failed, kept for a retry ---------------

CREATE TABLE clerk.sync_failures (
    entity          text NOT NULL,
    id              text NOT NULL,
    reason          text NOT NULL,
    sqlstate        text,
    attempts        integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_run_id     bigint,
    PRIMARY KEY (entity, id)
);
COMMENT ON TABLE clerk.sync_failures IS 'Records a sync could not store: retried by id on later runs (users, organizations) or by the next full listing, and forgotten once stored or gone';
SELECT pg_catalog.pg_extension_config_dump('clerk.sync_failures', '');

-- ---- pages and bodies as text: repaired the way a sync repairs them --------

CREATE FUNCTION @extschema@.clerk_apply_page(entity text, page text)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_apply_page_text';
COMMENT ON FUNCTION @extschema@.clerk_apply_page(text, text) IS 'Write one page of Clerk JSON, given as text, through the sync''s write path, with the sync''s repair';

CREATE FUNCTION @extschema@.clerk_apply_page(entity text, page json)
RETURNS jsonb
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'clerk_apply_page_text';
COMMENT ON FUNCTION @extschema@.clerk_apply_page(text, json) IS 'Write one page of Clerk JSON, given as json, through the sync''s write path, with the sync''s repair';

CREATE FUNCTION @extschema@.clerk_repair_json(body bytea, OUT value jsonb, OUT repairs jsonb)
RETURNS record
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'clerk_repair_json';
COMMENT ON FUNCTION @extschema@.clerk_repair_json(bytea) IS 'The repair every write path applies: the value as stored (NULL if it cannot be), and each repair made (element, path, rule)';

COMMENT ON FUNCTION @extschema@.clerk_set_webhook_secret(text) IS 'Store the webhook signing secret encrypted; preferred over clerk_sync.webhook_secret_file and CLERK_WEBHOOK_SECRET; an empty string removes it';
COMMENT ON FUNCTION @extschema@.clerk_set_secret_key(text) IS 'Store the Clerk secret key encrypted; preferred over clerk_sync.secret_key_file and CLERK_SECRET_KEY; nothing returns it';

-- ---- the role that writes: rights on schema clerk only ---------------------
-- The sync and webhook write path runs as clerk_sync_writer, never as the
-- superuser that owns the extension: a trigger someone adds on a clerk table
-- runs with this role's rights at most (see doc/credentials.md, "Triggers").
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'clerk_sync_writer') THEN
        CREATE ROLE clerk_sync_writer NOLOGIN;
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'clerk_sync_writer'
                   AND (rolsuper OR rolcanlogin OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
                        OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.roleid = pg_roles.oid)
                        OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.member = pg_roles.oid))) THEN
        RAISE EXCEPTION 'role clerk_sync_writer has more rights than clerk_sync gives it'
            USING ERRCODE = '42501',
                  DETAIL = 'clerk_sync writes as clerk_sync_writer and relies on it being a NOLOGIN role without attributes that is a member of no role and that no other role is a member of.',
                  HINT = 'ALTER ROLE clerk_sync_writer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, revoke it from its members and its roles from it, or drop it.';
    END IF;
END
$$;

-- ---- more of Clerk: invitations, domains, roles, permissions, sessions -----
-- Typed columns for what applications query, the whole object in raw, and
-- the same synced_at / deleted_at rules as users, organizations and
-- memberships.  No foreign keys, for the same reason as memberships: a page
-- must not fail because the object it points at arrives later.

CREATE TABLE clerk.organization_invitations (
    id                  text PRIMARY KEY,
    organization_id     text,
    email_address       text,
    role                text,
    role_name           text,
    status              text,
    inviter_id          text,
    public_metadata     jsonb NOT NULL DEFAULT '{}',
    private_metadata    jsonb NOT NULL DEFAULT '{}',
    url                 text,
    expires_at          timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX organization_invitations_organization_id_idx ON clerk.organization_invitations (organization_id);
CREATE INDEX organization_invitations_email_idx ON clerk.organization_invitations (lower(email_address));
COMMENT ON TABLE clerk.organization_invitations IS 'Clerk organization invitations (pending, accepted, revoked, expired); raw holds the whole object';

CREATE TABLE clerk.invitations (
    id                  text PRIMARY KEY,
    email_address       text,
    status              text,
    revoked             boolean,
    public_metadata     jsonb NOT NULL DEFAULT '{}',
    url                 text,
    expires_at          timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX invitations_email_idx ON clerk.invitations (lower(email_address));
COMMENT ON TABLE clerk.invitations IS 'Clerk instance invitations (sign-up invitations, polled: Clerk sends no webhooks for them); raw holds the whole object';

CREATE TABLE clerk.organization_domains (
    id                          text PRIMARY KEY,
    organization_id             text,
    name                        text,
    enrollment_mode             text,
    affiliation_email_address   text,
    verification_status         text,
    ownership_status            text,
    total_pending_invitations   integer,
    total_pending_suggestions   integer,
    created_at                  timestamptz,
    updated_at                  timestamptz,
    raw                         jsonb NOT NULL,
    synced_at                   timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX organization_domains_organization_id_idx ON clerk.organization_domains (organization_id);
CREATE INDEX organization_domains_name_idx ON clerk.organization_domains (lower(name));
COMMENT ON TABLE clerk.organization_domains IS 'Clerk organization domains; verification_status is the affiliation verification''s, ownership_status the DNS ownership''s';

CREATE TABLE clerk.roles (
    id                  text PRIMARY KEY,
    key                 text,
    name                text,
    description         text,
    is_creator_eligible boolean,
    permissions         text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX roles_key_idx ON clerk.roles (key);
COMMENT ON TABLE clerk.roles IS 'Clerk organization roles; permissions holds the keys of the role''s permissions';

CREATE TABLE clerk.permissions (
    id                  text PRIMARY KEY,
    key                 text,
    name                text,
    description         text,
    type                text,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX permissions_key_idx ON clerk.permissions (key);
COMMENT ON TABLE clerk.permissions IS 'Clerk organization permissions (system and custom)';

-- Login history: from the session webhooks, and clerk_sync_sessions()
CREATE TABLE clerk.sessions (
    id                          text PRIMARY KEY,
    user_id                     text,
    client_id                   text,
    status                      text,
    last_active_organization_id text,
    created_at                  timestamptz,
    updated_at                  timestamptz,
    last_active_at              timestamptz,
    expire_at                   timestamptz,
    abandon_at                  timestamptz,
    ended_at                    timestamptz,
    last_event                  text,
    raw                         jsonb NOT NULL,
    synced_at                   timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX sessions_user_id_idx ON clerk.sessions (user_id, created_at);
CREATE INDEX sessions_created_at_idx ON clerk.sessions (created_at);
-- what clerk_sync.session_retention prunes by, so that pruning on each
-- session event reads only the sessions it deletes
CREATE INDEX sessions_last_seen_idx ON clerk.sessions
    ((coalesce(ended_at, greatest(last_active_at, updated_at, created_at, synced_at))));
COMMENT ON TABLE clerk.sessions IS 'Clerk sessions (login history): ended_at is when a session stopped being active, last_event the latest event type that wrote it';

SELECT pg_catalog.pg_extension_config_dump('clerk.organization_invitations', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.invitations', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.organization_domains', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.roles', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.permissions', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.sessions', '');

CREATE FUNCTION clerk.map_organization_invitations(page jsonb)
RETURNS SETOF clerk.organization_invitations
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        coalesce(o ->> 'organization_id', o -> 'public_organization_data' ->> 'id'),
        o ->> 'email_address',
        o ->> 'role',
        o ->> 'role_name',
        o ->> 'status',
        o ->> 'inviter_id',
        clerk.object_or_empty(o -> 'public_metadata'),
        clerk.object_or_empty(o -> 'private_metadata'),
        o ->> 'url',
        clerk.ms_to_timestamptz(o -> 'expires_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_organization_invitations(jsonb) IS 'Rows of clerk.organization_invitations from Clerk organization invitation objects';

CREATE FUNCTION clerk.map_invitations(page jsonb)
RETURNS SETOF clerk.invitations
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'email_address',
        o ->> 'status',
        (o ->> 'revoked')::boolean,
        clerk.object_or_empty(o -> 'public_metadata'),
        o ->> 'url',
        clerk.ms_to_timestamptz(o -> 'expires_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_invitations(jsonb) IS 'Rows of clerk.invitations from Clerk invitation objects';

CREATE FUNCTION clerk.map_organization_domains(page jsonb)
RETURNS SETOF clerk.organization_domains
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        coalesce(o ->> 'organization_id', o -> 'public_organization_data' ->> 'id'),
        o ->> 'name',
        o ->> 'enrollment_mode',
        o ->> 'affiliation_email_address',
        coalesce(o -> 'affiliation_verification' ->> 'status', o -> 'verification' ->> 'status'),
        o -> 'ownership_verification' ->> 'status',
        (o ->> 'total_pending_invitations')::integer,
        (o ->> 'total_pending_suggestions')::integer,
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_organization_domains(jsonb) IS 'Rows of clerk.organization_domains from Clerk organization domain objects';

CREATE FUNCTION clerk.map_roles(page jsonb)
RETURNS SETOF clerk.roles
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'key',
        o ->> 'name',
        o ->> 'description',
        (o ->> 'is_creator_eligible')::boolean,
        ARRAY(SELECT k FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'permissions'))
                     WITH ORDINALITY AS a(p, n),
                     LATERAL (SELECT CASE pg_catalog.jsonb_typeof(p) WHEN 'object' THEN p ->> 'key'
                                          WHEN 'string' THEN p #>> '{}' END) AS x(k)
               WHERE k IS NOT NULL ORDER BY n),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_roles(jsonb) IS 'Rows of clerk.roles from Clerk role objects';

CREATE FUNCTION clerk.map_permissions(page jsonb)
RETURNS SETOF clerk.permissions
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'key',
        o ->> 'name',
        o ->> 'description',
        o ->> 'type',
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_permissions(jsonb) IS 'Rows of clerk.permissions from Clerk permission objects';

-- ended_at: a session that is no longer active (or pending) ended when it
-- was last updated.  last_event: the event that the status stands for
-- (session.created for an active one); a webhook then writes the type of
-- the event that stored the row.
CREATE FUNCTION clerk.map_sessions(page jsonb)
RETURNS SETOF clerk.sessions
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'user_id',
        o ->> 'client_id',
        o ->> 'status',
        o ->> 'last_active_organization_id',
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        clerk.ms_to_timestamptz(o -> 'last_active_at'),
        clerk.ms_to_timestamptz(o -> 'expire_at'),
        clerk.ms_to_timestamptz(o -> 'abandon_at'),
        CASE WHEN o ->> 'status' NOT IN ('active', 'pending')
             THEN clerk.ms_to_timestamptz(o -> 'updated_at') END,
        CASE WHEN o ->> 'status' = 'active' THEN 'session.created'
             WHEN o ->> 'status' IN ('pending', 'ended', 'removed', 'revoked')
             THEN 'session.' || (o ->> 'status') END,
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_sessions(jsonb) IS 'Rows of clerk.sessions from Clerk session objects';

-- the login history of given users (or of those active since the last backfill)
CREATE FUNCTION @extschema@.clerk_sync_sessions(user_ids text[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'clerk_sync_sessions';
COMMENT ON FUNCTION @extschema@.clerk_sync_sessions(text[]) IS 'Fetch and store the sessions of the users named (NULL: those active since the last backfill), paced by the rate limit';

-- ---- Clerk Billing and the waitlist --------------------------------------
-- Plans, prices, subscription items, statements and their payment attempts,
-- and the waitlist: the same columns and rules as the tables above.  Amounts
-- are numeric in the currency's smallest unit (cents for USD), beside their
-- currency: exact, whatever Clerk sends.  A payer is a user or an
-- organization: user_id and organization_id say which (Clerk's "" is NULL
-- here), payer_id is Clerk's commerce payer id.

-- A JSON number as numeric (a money object's amount, or a bare amount); NULL
-- for anything else.
CREATE FUNCTION clerk.amount_or_null(v jsonb)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE pg_catalog.jsonb_typeof(v)
             WHEN 'number'::pg_catalog.text THEN v::pg_catalog.numeric
             WHEN 'object'::pg_catalog.text THEN
               CASE WHEN pg_catalog.jsonb_typeof(v OPERATOR(pg_catalog.->) 'amount'::pg_catalog.text)
                         OPERATOR(pg_catalog.=) 'number'::pg_catalog.text
                    THEN (v OPERATOR(pg_catalog.->) 'amount'::pg_catalog.text)::pg_catalog.numeric END
           END
$$;
COMMENT ON FUNCTION clerk.amount_or_null(jsonb) IS 'An amount as numeric: a JSON number, or the amount of a Clerk money object; NULL otherwise';

CREATE TABLE clerk.billing_plans (
    id                  text PRIMARY KEY,
    name                text,
    slug                text,
    description         text,
    for_payer_type      text,
    is_default          boolean,
    is_recurring        boolean,
    publicly_visible    boolean,
    has_base_fee        boolean,
    currency            text,
    fee                 numeric,
    annual_monthly_fee  numeric,
    annual_fee          numeric,
    free_trial_enabled  boolean,
    free_trial_days     integer,
    features            text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX billing_plans_slug_idx ON clerk.billing_plans (slug);
COMMENT ON TABLE clerk.billing_plans IS 'Clerk Billing plans (free and paid); fees in the currency''s smallest unit, features the slugs of the plan''s features';

CREATE TABLE clerk.billing_prices (
    id                          text PRIMARY KEY,
    plan_id                     text,
    currency                    text,
    amount                      numeric,
    annual_monthly_amount       numeric,
    description                 text,
    is_default                  boolean,
    supported_billing_periods   text,
    created_at                  timestamptz,
    updated_at                  timestamptz,
    raw                         jsonb NOT NULL,
    synced_at                   timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz
);
CREATE INDEX billing_prices_plan_id_idx ON clerk.billing_prices (plan_id);
COMMENT ON TABLE clerk.billing_prices IS 'Clerk Billing prices (a plan''s default price and custom ones); amounts in the currency''s smallest unit';

CREATE TABLE clerk.billing_subscription_items (
    id                  text PRIMARY KEY,
    subscription_id     text,
    payer_id            text,
    user_id             text,
    organization_id     text,
    plan_id             text,
    plan_slug           text,
    price_id            text,
    status              text,
    plan_period         text,
    is_free_trial       boolean,
    amount              numeric,
    currency            text,
    lifetime_paid       numeric,
    period_start        timestamptz,
    period_end          timestamptz,
    canceled_at         timestamptz,
    past_due_at         timestamptz,
    ended_at            timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
-- what clerk.active_plan() and clerk.payer_has_feature() read by
CREATE INDEX billing_subscription_items_payer_idx ON clerk.billing_subscription_items
    ((coalesce(organization_id, user_id)));
CREATE INDEX billing_subscription_items_payer_id_idx ON clerk.billing_subscription_items (payer_id);
CREATE INDEX billing_subscription_items_plan_id_idx ON clerk.billing_subscription_items (plan_id);
COMMENT ON TABLE clerk.billing_subscription_items IS 'Clerk Billing subscription items, every status, free plans included; the payer is organization_id or user_id';

CREATE TABLE clerk.billing_statements (
    id                  text PRIMARY KEY,
    payer_id            text,
    user_id             text,
    organization_id     text,
    status              text,
    currency            text,
    grand_total         numeric,
    statement_at        timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX billing_statements_payer_idx ON clerk.billing_statements ((coalesce(organization_id, user_id)));
COMMENT ON TABLE clerk.billing_statements IS 'Clerk Billing statements; grand_total in the currency''s smallest unit';

CREATE TABLE clerk.billing_payment_attempts (
    id                      text PRIMARY KEY,
    payment_id              text,
    statement_id            text,
    subscription_item_id    text,
    payer_id                text,
    user_id                 text,
    organization_id         text,
    status                  text,
    charge_type             text,
    amount                  numeric,
    currency                text,
    paid_at                 timestamptz,
    failed_at               timestamptz,
    created_at              timestamptz,
    updated_at              timestamptz,
    raw                     jsonb NOT NULL,
    synced_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);
CREATE INDEX billing_payment_attempts_statement_id_idx ON clerk.billing_payment_attempts (statement_id);
CREATE INDEX billing_payment_attempts_payer_idx ON clerk.billing_payment_attempts ((coalesce(organization_id, user_id)));
COMMENT ON TABLE clerk.billing_payment_attempts IS 'Clerk Billing payment attempts, per statement; amount in the currency''s smallest unit';

CREATE TABLE clerk.waitlist_entries (
    id                  text PRIMARY KEY,
    email_address       text,
    status              text,
    is_locked           boolean,
    invitation_id       text,
    created_at          timestamptz,
    updated_at          timestamptz,
    raw                 jsonb NOT NULL,
    synced_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX waitlist_entries_email_idx ON clerk.waitlist_entries (lower(email_address));
COMMENT ON TABLE clerk.waitlist_entries IS 'Clerk waitlist entries (pending, invited, completed, rejected)';

SELECT pg_catalog.pg_extension_config_dump('clerk.billing_plans', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.billing_prices', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.billing_subscription_items', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.billing_statements', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.billing_payment_attempts', '');
SELECT pg_catalog.pg_extension_config_dump('clerk.waitlist_entries', '');

CREATE FUNCTION clerk.map_billing_plans(page jsonb)
RETURNS SETOF clerk.billing_plans
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'name',
        o ->> 'slug',
        o ->> 'description',
        o ->> 'for_payer_type',
        (o ->> 'is_default')::boolean,
        (o ->> 'is_recurring')::boolean,
        (o ->> 'publicly_visible')::boolean,
        (o ->> 'has_base_fee')::boolean,
        coalesce(o -> 'fee' ->> 'currency', o -> 'annual_monthly_fee' ->> 'currency', o ->> 'currency'),
        coalesce(clerk.amount_or_null(o -> 'fee'), clerk.amount_or_null(o -> 'amount')),
        clerk.amount_or_null(o -> 'annual_monthly_fee'),
        clerk.amount_or_null(o -> 'annual_fee'),
        (o ->> 'free_trial_enabled')::boolean,
        CASE WHEN clerk.amount_or_null(o -> 'free_trial_days') BETWEEN 0 AND 36500
             THEN pg_catalog.round(clerk.amount_or_null(o -> 'free_trial_days'))::integer END,
        ARRAY(SELECT f ->> 'slug' FROM pg_catalog.jsonb_array_elements(clerk.array_or_empty(o -> 'features'))
                     WITH ORDINALITY AS a(f, n)
               WHERE pg_catalog.jsonb_typeof(f) = 'object' AND f ->> 'slug' IS NOT NULL ORDER BY n),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_billing_plans(jsonb) IS 'Rows of clerk.billing_plans from Clerk plan objects';

CREATE FUNCTION clerk.map_billing_prices(page jsonb)
RETURNS SETOF clerk.billing_prices
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'plan_id',
        coalesce(o ->> 'currency', o -> 'fee' ->> 'currency'),
        coalesce(clerk.amount_or_null(o -> 'amount'), clerk.amount_or_null(o -> 'fee')),
        coalesce(clerk.amount_or_null(o -> 'annual_monthly_amount'), clerk.amount_or_null(o -> 'annual_monthly_fee')),
        o ->> 'description',
        (o ->> 'is_default')::boolean,
        o ->> 'supported_billing_periods',
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_billing_prices(jsonb) IS 'Rows of clerk.billing_prices from Clerk price objects';

-- A subscription item as listed (commerce_subscription_item), as sent on its
-- own by a subscriptionItem.* event (object "subscription_item"), or nested
-- in a subscription.* event's subscription (object "commerce_subscription",
-- told by its items list): each item of a subscription is an object of its
-- own, its payer and subscription_id taken from the subscription (a nested
-- item has them null); an item without an id, or twice in one subscription
-- (the newest kept), is left out.
CREATE FUNCTION clerk.billing_subscription_item_objects(page jsonb)
RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p FROM clerk.objects(page) AS p
     WHERE jsonb_typeof(p -> 'items') IS DISTINCT FROM 'array'
    UNION ALL
    (SELECT DISTINCT ON (p ->> 'id', i ->> 'id')
            i || jsonb_build_object(
                     'payer', CASE WHEN jsonb_typeof(i -> 'payer') = 'object' THEN i -> 'payer' ELSE p -> 'payer' END,
                     'payer_id', coalesce(i -> 'payer_id', p -> 'payer_id'),
                     'subscription_id', CASE WHEN jsonb_typeof(i -> 'subscription_id') = 'string'
                                             THEN i -> 'subscription_id' ELSE p -> 'id' END)
       FROM clerk.objects(page) AS p, jsonb_array_elements(p -> 'items') AS e(i)
      WHERE jsonb_typeof(p -> 'items') = 'array' AND jsonb_typeof(i) = 'object'
        AND jsonb_typeof(i -> 'id') = 'string'
      ORDER BY p ->> 'id', i ->> 'id', clerk.amount_or_null(i -> 'updated_at') DESC NULLS LAST)
$$;
COMMENT ON FUNCTION clerk.billing_subscription_item_objects(jsonb) IS 'The subscription items of a page: items as they are, and each item of a subscription with the subscription''s payer and id';

-- An amount is a money object in one shape and a bare number in another;
-- both are read.
CREATE FUNCTION clerk.map_billing_subscription_items(page jsonb)
RETURNS SETOF clerk.billing_subscription_items
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'subscription_id',
        coalesce(o ->> 'payer_id', o -> 'payer' ->> 'id'),
        NULLIF(o -> 'payer' ->> 'user_id', ''),
        NULLIF(o -> 'payer' ->> 'organization_id', ''),
        coalesce(o ->> 'plan_id', o -> 'plan' ->> 'id'),
        o -> 'plan' ->> 'slug',
        o ->> 'price_id',
        o ->> 'status',
        coalesce(o ->> 'plan_period', o ->> 'interval'),
        (o ->> 'is_free_trial')::boolean,
        coalesce(clerk.amount_or_null(o -> 'amount'), clerk.amount_or_null(o -> 'plan' -> 'fee'),
                 clerk.amount_or_null(o -> 'plan' -> 'amount')),
        coalesce(o -> 'amount' ->> 'currency', o -> 'plan' -> 'fee' ->> 'currency', o -> 'plan' ->> 'currency'),
        clerk.amount_or_null(o -> 'lifetime_paid'),
        clerk.ms_to_timestamptz(o -> 'period_start'),
        clerk.ms_to_timestamptz(o -> 'period_end'),
        clerk.ms_to_timestamptz(o -> 'canceled_at'),
        clerk.ms_to_timestamptz(o -> 'past_due_at'),
        clerk.ms_to_timestamptz(o -> 'ended_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.billing_subscription_item_objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_billing_subscription_items(jsonb) IS 'Rows of clerk.billing_subscription_items from Clerk subscription items, or from the items of a subscription';

CREATE FUNCTION clerk.map_billing_statements(page jsonb)
RETURNS SETOF clerk.billing_statements
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        coalesce(o ->> 'payer_id', o -> 'payer' ->> 'id'),
        NULLIF(o -> 'payer' ->> 'user_id', ''),
        NULLIF(o -> 'payer' ->> 'organization_id', ''),
        o ->> 'status',
        o -> 'totals' -> 'grand_total' ->> 'currency',
        clerk.amount_or_null(o -> 'totals' -> 'grand_total'),
        clerk.ms_to_timestamptz(o -> 'timestamp'),
        coalesce(clerk.ms_to_timestamptz(o -> 'created_at'), clerk.ms_to_timestamptz(o -> 'timestamp')),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_billing_statements(jsonb) IS 'Rows of clerk.billing_statements from Clerk statement objects';

-- Listed, a payment attempt is a commerce_payment with its amount; in a
-- paymentAttempt.* event its data has no "object", totals instead of an
-- amount, and its subscription items in a list.
CREATE FUNCTION clerk.map_billing_payment_attempts(page jsonb)
RETURNS SETOF clerk.billing_payment_attempts
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'payment_id',
        o ->> 'statement_id',
        coalesce(o ->> 'subscription_item_id', o -> 'subscription_item' ->> 'id',
                 clerk.array_or_empty(o -> 'subscription_items') -> 0 ->> 'id'),
        coalesce(o ->> 'payer_id', o -> 'payer' ->> 'id'),
        NULLIF(o -> 'payer' ->> 'user_id', ''),
        NULLIF(o -> 'payer' ->> 'organization_id', ''),
        o ->> 'status',
        o ->> 'charge_type',
        coalesce(clerk.amount_or_null(o -> 'amount'), clerk.amount_or_null(o -> 'totals' -> 'grand_total')),
        coalesce(o -> 'amount' ->> 'currency', o -> 'totals' -> 'grand_total' ->> 'currency'),
        clerk.ms_to_timestamptz(o -> 'paid_at'),
        clerk.ms_to_timestamptz(o -> 'failed_at'),
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_billing_payment_attempts(jsonb) IS 'Rows of clerk.billing_payment_attempts from Clerk payment attempts, listed or sent by an event';

CREATE FUNCTION clerk.map_waitlist_entries(page jsonb)
RETURNS SETOF clerk.waitlist_entries
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT
        o ->> 'id',
        o ->> 'email_address',
        o ->> 'status',
        (o ->> 'is_locked')::boolean,
        o -> 'invitation' ->> 'id',
        clerk.ms_to_timestamptz(o -> 'created_at'),
        clerk.ms_to_timestamptz(o -> 'updated_at'),
        o,
        pg_catalog.now(),
        NULL::timestamptz
    FROM clerk.objects(page) AS o
$$;
COMMENT ON FUNCTION clerk.map_waitlist_entries(jsonb) IS 'Rows of clerk.waitlist_entries from Clerk waitlist entries (object waitlist_entry, or waitlistEntry in an event)';

-- From the session token (v2 pla and fea, scoped u: and o:), as Clerk's
-- has({ plan }) and has({ feature }) read them; and from the synced data.
CREATE FUNCTION clerk.has_plan(plan text)
RETURNS boolean
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_has_plan';
COMMENT ON FUNCTION clerk.has_plan(text) IS 'Whether the token''s pla claim names the plan (slug; org:<slug> or user:<slug> for one scope), as Clerk''s has({ plan }); false without a token or the claim';

CREATE FUNCTION clerk.has_feature(feature text)
RETURNS boolean
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_has_feature';
COMMENT ON FUNCTION clerk.has_feature(text) IS 'Whether the token''s fea claim names the feature (slug; org:<slug> or user:<slug> for one scope), as Clerk''s has({ feature }); false without a token or the claim';

CREATE FUNCTION clerk.active_plan(payer_id text)
RETURNS text
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_active_plan';
COMMENT ON FUNCTION clerk.active_plan(text) IS 'The slug of the plan of the payer''s (a user id or an organization id) live synced subscription item (active, past due, or canceled until its period ends; paid before free); NULL without one';

CREATE FUNCTION clerk.payer_has_feature(payer_id text, feature text)
RETURNS boolean
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_payer_has_feature';
COMMENT ON FUNCTION clerk.payer_has_feature(text, text) IS 'Whether a plan of the payer''s (a user id or an organization id) live synced subscription items has the feature (its slug), as clerk.billing_plans lists them';

-- clerk_database_summary() reports the new entities too
CREATE OR REPLACE FUNCTION @extschema@.clerk_database_summary(
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
    UNION ALL
    SELECT 'organization_invitations', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'pending', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'pending'),
               'organization_missing_or_deleted',
               (SELECT count(*) FROM clerk.organization_invitations i
                 WHERE i.deleted_at IS NULL AND NOT EXISTS
                   (SELECT 1 FROM clerk.organizations o WHERE o.id = i.organization_id AND o.deleted_at IS NULL)))
      FROM clerk.organization_invitations
    UNION ALL
    SELECT 'invitations', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'pending', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'pending'))
      FROM clerk.invitations
    UNION ALL
    SELECT 'organization_domains', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'unverified', count(*) FILTER (WHERE deleted_at IS NULL
                                              AND verification_status IS DISTINCT FROM 'verified'),
               'organization_missing_or_deleted',
               (SELECT count(*) FROM clerk.organization_domains d
                 WHERE d.deleted_at IS NULL AND NOT EXISTS
                   (SELECT 1 FROM clerk.organizations o WHERE o.id = d.organization_id AND o.deleted_at IS NULL)))
      FROM clerk.organization_domains
    UNION ALL
    SELECT 'roles', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'memberships_with_unknown_role',
               (SELECT count(*) FROM clerk.organization_members m
                 WHERE m.deleted_at IS NULL AND m.role IS NOT NULL
                   AND EXISTS (SELECT 1 FROM clerk.roles WHERE deleted_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM clerk.roles r WHERE r.key = m.role AND r.deleted_at IS NULL)))
      FROM clerk.roles
    UNION ALL
    SELECT 'permissions', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           '{}'::jsonb
      FROM clerk.permissions
    UNION ALL
    SELECT 'sessions', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'active', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'active'),
               'user_missing_or_deleted',
               (SELECT count(*) FROM clerk.sessions x
                 WHERE x.deleted_at IS NULL AND NOT EXISTS
                   (SELECT 1 FROM clerk.users u WHERE u.id = x.user_id AND u.deleted_at IS NULL)))
      FROM clerk.sessions
    UNION ALL
    SELECT 'billing_plans', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           '{}'::jsonb
      FROM clerk.billing_plans
    UNION ALL
    SELECT 'billing_prices', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           '{}'::jsonb
      FROM clerk.billing_prices
    UNION ALL
    -- live: active, past due, or canceled until its period ends (as clerk.active_plan() reads them)
    SELECT 'billing_subscription_items', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'payer_missing_or_deleted',
               (SELECT count(*) FROM clerk.billing_subscription_items i
                 WHERE i.deleted_at IS NULL
                   AND CASE WHEN i.organization_id IS NOT NULL
                            THEN NOT EXISTS (SELECT 1 FROM clerk.organizations o
                                              WHERE o.id = i.organization_id AND o.deleted_at IS NULL)
                            ELSE NOT EXISTS (SELECT 1 FROM clerk.users u
                                              WHERE u.id = i.user_id AND u.deleted_at IS NULL) END),
               'payers_with_duplicate_active_items',
               (SELECT count(*) FROM (SELECT 1 FROM clerk.billing_subscription_items i
                                       WHERE i.deleted_at IS NULL AND i.status = 'active'
                                       GROUP BY coalesce(i.organization_id, i.user_id, i.payer_id), i.plan_id
                                      HAVING count(*) > 1) d),
               'active_past_period_end',
               count(*) FILTER (WHERE deleted_at IS NULL AND status = 'active'
                                  AND period_end < pg_catalog.now()))
      FROM clerk.billing_subscription_items
    UNION ALL
    SELECT 'billing_statements', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'open', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'open'))
      FROM clerk.billing_statements
    UNION ALL
    SELECT 'billing_payment_attempts', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'failed', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'failed'))
      FROM clerk.billing_payment_attempts
    UNION ALL
    SELECT 'waitlist_entries', count(*), count(*) FILTER (WHERE deleted_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL), max(synced_at),
           pg_catalog.jsonb_build_object(
               'pending', count(*) FILTER (WHERE deleted_at IS NULL AND status = 'pending'))
      FROM clerk.waitlist_entries
$$;
COMMENT ON FUNCTION @extschema@.clerk_database_summary() IS 'Per entity (users, organizations, memberships, invitations, domains, roles, permissions, sessions, billing, waitlist): total, active, soft-deleted, last synced, and integrity findings';

-- ---- the mapping's helpers: every object says what it is -----------------
COMMENT ON FUNCTION clerk.ms_to_timestamptz(jsonb) IS 'A Clerk timestamp (Unix milliseconds, as jsonb) as timestamptz';
COMMENT ON FUNCTION clerk.array_or_empty(jsonb) IS 'The value when it is a JSON array, else an empty one';
COMMENT ON FUNCTION clerk.object_or_empty(jsonb) IS 'The value, or an empty JSON object for SQL or JSON null';

-- ---- row-level security: the session token's claims, and memberships ------
-- For policies on application tables (doc/row-level-security.md).  The
-- claims are those of the verified Clerk session token, in the setting
-- request.jwt.claims as PostgREST and Supabase set it for each request (or
-- as the application sets it with SET LOCAL); the setting is parsed once per
-- backend for each text it holds.  Token versions 1 and 2 are both read; a
-- malformed claim is absent (NULL, no permission), only a setting that is
-- not JSON is an error (22P02).  is_member() and org_role_in() answer from
-- the synced memberships, as clerk_sync_writer, once per call site and
-- snapshot.  Like everything here, no EXECUTE for PUBLIC: grant them to the
-- role that queries the application's tables.

CREATE FUNCTION clerk.user_id()
RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_user_id';
COMMENT ON FUNCTION clerk.user_id() IS 'The Clerk user id (sub) of the session token in request.jwt.claims; NULL without one';

CREATE FUNCTION clerk.org_id()
RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_org_id';
COMMENT ON FUNCTION clerk.org_id() IS 'The id of the session token''s active organization (v2 o.id, v1 org_id); NULL without one';

CREATE FUNCTION clerk.org_role()
RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_org_role';
COMMENT ON FUNCTION clerk.org_role() IS 'The user''s role in the token''s active organization, as org:<role> (v2 ''org:'' || o.rol, v1 org_role); NULL without an active organization';

CREATE FUNCTION clerk.org_slug()
RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_org_slug';
COMMENT ON FUNCTION clerk.org_slug() IS 'The slug of the token''s active organization (v2 o.slg, v1 org_slug); NULL without an active organization';

CREATE FUNCTION clerk.org_permissions()
RETURNS text[]
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_org_permissions';
COMMENT ON FUNCTION clerk.org_permissions() IS 'The user''s permissions in the token''s active organization as full keys, org:<feature>:<action> (v2 decoded from o.per, o.fpm and fea; v1 org_permissions); NULL without an active organization or (v1) without the claim';

CREATE FUNCTION clerk.has_permission(permission text)
RETURNS boolean
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_has_permission';
COMMENT ON FUNCTION clerk.has_permission(text) IS 'Whether the token grants the permission (a full key, org:<feature>:<action>) in its active organization; false without one';

CREATE FUNCTION clerk.is_member(org_id text)
RETURNS boolean
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_is_member';
COMMENT ON FUNCTION clerk.is_member(text) IS 'Whether the token''s user has a live synced membership (clerk.organization_members) in the organization, active in the token or not; false without a user';

CREATE FUNCTION clerk.org_role_in(org_id text)
RETURNS text
LANGUAGE C STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'clerk_rls_org_role_in';
COMMENT ON FUNCTION clerk.org_role_in(text) IS 'The token''s user''s role in the organization, from their live synced membership; NULL without one';

-- ---- writing to Clerk: changes queued in a transaction, sent after commit ---
-- A change is a row of clerk.changes, inserted by one of the functions below
-- in the caller's transaction: if it rolls back, there is nothing to send.
-- The write-back worker sends each committed change once, in id order per
-- object (object_key), and writes Clerk's answer through the one write path.
CREATE TABLE clerk.changes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queued_by       name NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    operation       text NOT NULL,
    object_type     text NOT NULL,
    object_id       text,
    organization_id text,
    object_key      text NOT NULL,
    arguments       jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'canceled')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_attempt_at timestamptz,
    in_doubt        boolean NOT NULL DEFAULT false,
    finished_at     timestamptz,
    http_status     integer,
    error_code      text,
    error_message   text,
    result_id       text
);
CREATE INDEX changes_pending ON clerk.changes (object_key, id) WHERE status = 'pending';
CREATE INDEX changes_due ON clerk.changes (next_attempt_at) WHERE status = 'pending';
CREATE INDEX changes_finished ON clerk.changes (finished_at) WHERE status <> 'pending';
COMMENT ON TABLE clerk.changes IS 'Changes to Clerk queued from SQL (clerk.update_user(), ...): sent by the write-back worker after their transaction commits, in order per object';
COMMENT ON COLUMN clerk.changes.object_key IS 'Changes with the same key are sent one at a time, in id order (the order their transactions committed in)';
COMMENT ON COLUMN clerk.changes.in_doubt IS 'The last attempt was sent and its answer lost: Clerk may have applied it (a create is looked up before it is sent again)';
SELECT pg_catalog.pg_extension_config_dump('clerk.changes', '');

-- Clerk's metadata merge (PATCH .../metadata): objects merge recursively, a
-- key set to null is removed, anything else replaces.
CREATE FUNCTION clerk.metadata_merge(stored jsonb, patch jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN patch IS NULL THEN stored
        WHEN pg_catalog.jsonb_typeof(patch) OPERATOR(pg_catalog.<>) 'object' THEN patch
        ELSE (SELECT COALESCE(pg_catalog.jsonb_object_agg(m.key, m.value), '{}'::jsonb)
                FROM (SELECT COALESCE(p.key, s.key) AS key,
                             CASE WHEN p.key IS NULL THEN s.value
                                  ELSE clerk.metadata_merge(
                                           CASE WHEN pg_catalog.jsonb_typeof(s.value) OPERATOR(pg_catalog.=) 'object'
                                                THEN s.value END, p.value) END AS value
                        FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(stored) OPERATOR(pg_catalog.=) 'object'
                                                        THEN stored ELSE '{}'::jsonb END) s
                        FULL JOIN pg_catalog.jsonb_each(patch) p ON p.key OPERATOR(pg_catalog.=) s.key
                       WHERE p.key IS NULL
                          OR pg_catalog.jsonb_typeof(p.value) OPERATOR(pg_catalog.<>) 'null') m)
    END
$$;
COMMENT ON FUNCTION clerk.metadata_merge(jsonb, jsonb) IS 'Clerk''s metadata merge: objects merge recursively, a key set to null is removed, anything else replaces';

CREATE FUNCTION clerk.update_user(user_id text, first_name text DEFAULT NULL, last_name text DEFAULT NULL,
                                  username text DEFAULT NULL, external_id text DEFAULT NULL, locale text DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_update_user';
COMMENT ON FUNCTION clerk.update_user(text, text, text, text, text, text) IS 'Queue PATCH /users/{id} (the fields given; '''' removes a username or external id), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.merge_user_metadata(user_id text, public jsonb DEFAULT NULL, private jsonb DEFAULT NULL, unsafe jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_merge_user_metadata';
COMMENT ON FUNCTION clerk.merge_user_metadata(text, jsonb, jsonb, jsonb) IS 'Queue PATCH /users/{id}/metadata (deep merge; null removes a key), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.ban_user(user_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_ban_user';
CREATE FUNCTION clerk.unban_user(user_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_unban_user';
CREATE FUNCTION clerk.lock_user(user_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_lock_user';
CREATE FUNCTION clerk.unlock_user(user_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_unlock_user';
CREATE FUNCTION clerk.delete_user(user_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_delete_user';
COMMENT ON FUNCTION clerk.ban_user(text) IS 'Queue POST /users/{id}/ban, sent after commit; returns the change''s id';
COMMENT ON FUNCTION clerk.unban_user(text) IS 'Queue POST /users/{id}/unban, sent after commit; returns the change''s id';
COMMENT ON FUNCTION clerk.lock_user(text) IS 'Queue POST /users/{id}/lock, sent after commit; returns the change''s id';
COMMENT ON FUNCTION clerk.unlock_user(text) IS 'Queue POST /users/{id}/unlock, sent after commit; returns the change''s id';
COMMENT ON FUNCTION clerk.delete_user(text) IS 'Queue DELETE /users/{id}, sent after commit; returns the change''s id';

CREATE FUNCTION clerk.create_organization(name text, slug text DEFAULT NULL, created_by text DEFAULT NULL,
                                          public jsonb DEFAULT NULL, private jsonb DEFAULT NULL,
                                          max_allowed_memberships integer DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_create_organization';
COMMENT ON FUNCTION clerk.create_organization(text, text, text, jsonb, jsonb, integer) IS 'Queue POST /organizations (the slug made from the name when not given), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.update_organization(organization_id text, name text DEFAULT NULL, slug text DEFAULT NULL,
                                          max_allowed_memberships integer DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_update_organization';
COMMENT ON FUNCTION clerk.update_organization(text, text, text, integer) IS 'Queue PATCH /organizations/{id}, sent after commit; returns the change''s id';
CREATE FUNCTION clerk.merge_organization_metadata(organization_id text, public jsonb DEFAULT NULL, private jsonb DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_merge_organization_metadata';
COMMENT ON FUNCTION clerk.merge_organization_metadata(text, jsonb, jsonb) IS 'Queue PATCH /organizations/{id}/metadata (deep merge; null removes a key), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.delete_organization(organization_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_delete_organization';
COMMENT ON FUNCTION clerk.delete_organization(text) IS 'Queue DELETE /organizations/{id}, sent after commit; returns the change''s id';

CREATE FUNCTION clerk.add_organization_member(organization_id text, user_id text, role text)
RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_add_organization_member';
COMMENT ON FUNCTION clerk.add_organization_member(text, text, text) IS 'Queue POST /organizations/{id}/memberships (a user with a role), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.set_organization_member_role(organization_id text, user_id text, role text)
RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_set_organization_member_role';
COMMENT ON FUNCTION clerk.set_organization_member_role(text, text, text) IS 'Queue PATCH /organizations/{id}/memberships/{user_id} (the role), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.remove_organization_member(organization_id text, user_id text)
RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_remove_organization_member';
COMMENT ON FUNCTION clerk.remove_organization_member(text, text) IS 'Queue DELETE /organizations/{id}/memberships/{user_id}, sent after commit; returns the change''s id';

CREATE FUNCTION clerk.invite_to_organization(organization_id text, email_address text, role text,
                                             inviter_user_id text DEFAULT NULL, redirect_url text DEFAULT NULL,
                                             public jsonb DEFAULT NULL, expires_in_days integer DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_invite_to_organization';
COMMENT ON FUNCTION clerk.invite_to_organization(text, text, text, text, text, jsonb, integer) IS 'Queue POST /organizations/{id}/invitations, sent after commit; returns the change''s id';
CREATE FUNCTION clerk.revoke_organization_invitation(organization_id text, invitation_id text, requesting_user_id text DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_revoke_organization_invitation';
COMMENT ON FUNCTION clerk.revoke_organization_invitation(text, text, text) IS 'Queue POST /organizations/{id}/invitations/{invitation_id}/revoke, sent after commit; returns the change''s id';
CREATE FUNCTION clerk.create_invitation(email_address text, public jsonb DEFAULT NULL, redirect_url text DEFAULT NULL,
                                        notify boolean DEFAULT NULL, expires_in_days integer DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_create_invitation';
COMMENT ON FUNCTION clerk.create_invitation(text, jsonb, text, boolean, integer) IS 'Queue POST /invitations (an invitation to the instance), sent after commit; returns the change''s id';
CREATE FUNCTION clerk.revoke_invitation(invitation_id text) RETURNS bigint LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_revoke_invitation';
COMMENT ON FUNCTION clerk.revoke_invitation(text) IS 'Queue POST /invitations/{id}/revoke, sent after commit; returns the change''s id';

CREATE FUNCTION clerk.wait_for_change(change_id bigint, timeout interval DEFAULT '30 seconds')
RETURNS text LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_wait';
COMMENT ON FUNCTION clerk.wait_for_change(bigint, interval) IS 'Wait until a committed change is sent, failed or canceled, or the timeout passes; returns its status';
CREATE FUNCTION clerk.cancel_change(change_id bigint) RETURNS boolean LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_cancel';
COMMENT ON FUNCTION clerk.cancel_change(bigint) IS 'Cancel a pending change; false if it is no longer pending (one being sent may still reach Clerk: its row then says sent)';
CREATE FUNCTION clerk.retry_change(change_id bigint) RETURNS boolean LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'clerk_change_retry';
COMMENT ON FUNCTION clerk.retry_change(bigint) IS 'Queue a failed change again, after commit; false if it has not failed';

-- clerk_status() shows the library's and the installed SQL's versions, and
-- counts the changes to Clerk
CREATE OR REPLACE FUNCTION @extschema@.clerk_status()
RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'running', (SELECT pg_catalog.to_jsonb(p) FROM clerk.sync_progress p LIMIT 1),
        'last_run', (SELECT pg_catalog.to_jsonb(r) FROM clerk.sync_runs r ORDER BY id DESC LIMIT 1),
        'last_successful_run', (SELECT pg_catalog.to_jsonb(r) FROM clerk.sync_runs r
                                 WHERE status OPERATOR(pg_catalog.=) 'succeeded' AND NOT dry_run ORDER BY id DESC LIMIT 1),
        'rows', pg_catalog.jsonb_build_object(
            'users', (SELECT pg_catalog.count(*) FROM clerk.users WHERE deleted_at IS NULL),
            'organizations', (SELECT pg_catalog.count(*) FROM clerk.organizations WHERE deleted_at IS NULL),
            'memberships', (SELECT pg_catalog.count(*) FROM clerk.organization_members WHERE deleted_at IS NULL)),
        'changes', (SELECT pg_catalog.jsonb_build_object(
                        'pending', pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'pending'),
                        'sent', pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'sent'),
                        'failed', pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'failed'),
                        'canceled', pg_catalog.count(*) FILTER (WHERE status OPERATOR(pg_catalog.=) 'canceled'),
                        'oldest_pending', pg_catalog.min(queued_at) FILTER (WHERE status OPERATOR(pg_catalog.=) 'pending'))
                      FROM clerk.changes),
        'version', pg_catalog.jsonb_build_object(
            'library', @extschema@.clerk_library_version(),
            'extension', (SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'clerk_sync')),
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
-- Every object of the extension gets an owner-only ACL, whatever ALTER
-- DEFAULT PRIVILEGES granted when it was created (see README, "Permissions"):
-- a grant that the default privileges of the object's owner give (for the
-- object's kind, everywhere or in its schema) is taken back; a grant an
-- administrator made on purpose (GRANT EXECUTE ... TO clerk_webhook) stays.
-- Then clerk_sync_writer gets what the write path needs, and nothing else.
DO $$
DECLARE
    o record;
    target text;
    acl aclitem[];
    owner oid;
    schema oid;
    kind "char";
    g oid;
BEGIN
    FOR o IN
        SELECT d.classid, d.objid
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE e.extname = 'clerk_sync'
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.deptype = 'e'
    LOOP
        target := NULL;
        IF o.classid = 'pg_catalog.pg_proc'::regclass THEN
            SELECT pg_catalog.format('FUNCTION %s', p.oid::regprocedure), p.proacl, p.proowner, p.pronamespace, 'f'
              INTO target, acl, owner, schema, kind FROM pg_catalog.pg_proc p WHERE p.oid = o.objid;
            -- no ACL means PUBLIC may execute
            IF acl IS NULL THEN
                EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', target);
            END IF;
        ELSIF o.classid = 'pg_catalog.pg_class'::regclass THEN
            SELECT pg_catalog.format(CASE c.relkind WHEN 'S' THEN 'SEQUENCE %s' ELSE 'TABLE %s' END, c.oid::regclass),
                   c.relacl, c.relowner, c.relnamespace, CASE c.relkind WHEN 'S' THEN 'S' ELSE 'r' END
              INTO target, acl, owner, schema, kind FROM pg_catalog.pg_class c WHERE c.oid = o.objid;
        ELSIF o.classid = 'pg_catalog.pg_namespace'::regclass THEN
            SELECT pg_catalog.format('SCHEMA %I', n.nspname), n.nspacl, n.nspowner, 0, 'n'
              INTO target, acl, owner, schema, kind FROM pg_catalog.pg_namespace n WHERE n.oid = o.objid;
        ELSIF o.classid = 'pg_catalog.pg_type'::regclass THEN
            -- since PostgreSQL 17 a table's row type and array types are members
            -- too; their privileges are the table's and the element type's
            SELECT pg_catalog.format('TYPE %s', t.oid::regtype), t.typacl, t.typowner, t.typnamespace, 'T'
              INTO target, acl, owner, schema, kind FROM pg_catalog.pg_type t
             WHERE t.oid = o.objid AND t.typrelid = 0 AND t.typcategory <> 'A';
            IF target IS NOT NULL AND acl IS NULL THEN
                EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC', target);
            END IF;
        END IF;
        CONTINUE WHEN target IS NULL OR acl IS NULL;
        FOR g IN SELECT DISTINCT a.grantee FROM pg_catalog.aclexplode(acl) a
                  WHERE a.grantee <> owner
                    AND EXISTS (SELECT FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) da
                                 WHERE d.defaclrole = owner AND d.defaclobjtype = kind
                                   AND d.defaclnamespace IN (0, schema) AND da.grantee = a.grantee)
        LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', target,
                                      CASE WHEN g = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(g::regrole::text) END);
        END LOOP;
    END LOOP;
END
$$;

-- The mapping functions parse their bodies with a pinned search_path, so
-- that calling one (as a sync does, or a user) runs only built-ins and the
-- extension's helpers, whatever the caller's search_path holds.  Pinned, they
-- are no longer inlined into the page's statement; ROWS 100 gives the planner
-- the estimate it had of the inlined body (jsonb_array_elements), without
-- which it plans a page of 1000 rows and reads the whole table for each.
ALTER FUNCTION clerk.map_users(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_organizations(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_memberships(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_organization_invitations(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_invitations(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_organization_domains(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_roles(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_permissions(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_sessions(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_billing_plans(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_billing_prices(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_billing_subscription_items(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_billing_statements(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_billing_payment_attempts(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION clerk.map_waitlist_entries(jsonb) ROWS 100 SET search_path = pg_catalog, pg_temp;

GRANT USAGE ON SCHEMA clerk TO clerk_sync_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA clerk TO clerk_sync_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA clerk TO clerk_sync_writer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA clerk TO clerk_sync_writer;
-- the sync keeps the ids it lists in a temporary table
DO $$
BEGIN
    EXECUTE pg_catalog.format('GRANT TEMPORARY ON DATABASE %I TO clerk_sync_writer', pg_catalog.current_database());
END
$$;

-- ---- the vault: 1.0's values bound to their rows ---------------------------
-- 1.0 sealed credentials and secrets without their row id and state, so that
-- a copy of one opened on any row of the same organization and service; this
-- library opens such values only to re-seal them, which happens here (under
-- the newest key of the ring the server loaded, as the writer, audited).
DO $$
BEGIN
    IF EXISTS (SELECT FROM clerk.api_credentials WHERE pg_catalog.get_byte(credentials_encrypted, 0) = 1)
       OR EXISTS (SELECT FROM clerk.secrets WHERE pg_catalog.get_byte(value_encrypted, 0) = 1) THEN
        PERFORM @extschema@.clerk_rotate_encryption_key();
    END IF;
END
$$;
