-- Row-level security: the claims of the session token in request.jwt.claims
-- (v1 and v2, missing and malformed pieces, text that is not JSON), the
-- synced memberships, and doc/row-level-security.md's example as written.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

-- no setting at all (never set in this session)
SELECT current_setting('request.jwt.claims', true) IS NULL AS never_set,
       clerk.user_id(), clerk.org_id(), clerk.org_role(), clerk.org_slug(), clerk.org_permissions(),
       clerk.has_permission('org:invoices:manage'), clerk.is_member('org_acme'), clerk.org_role_in('org_acme');

-- every function is STABLE, PARALLEL SAFE, and not executable by PUBLIC
SELECT p.oid::regprocedure AS function, p.provolatile, p.proparallel, p.proisstrict,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'clerk'::regnamespace
   AND p.proname IN ('user_id', 'org_id', 'org_role', 'org_slug', 'org_permissions',
                     'has_permission', 'is_member', 'org_role_in')
 ORDER BY 1::text;

-- what the functions answer for one setting, set for the transaction
CREATE FUNCTION rls_read(claims text, permission text)
RETURNS TABLE (user_id text, org_id text, org_role text, org_slug text, permissions text[], has boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', claims, true);
    RETURN QUERY SELECT clerk.user_id(), clerk.org_id(), clerk.org_role(), clerk.org_slug(),
                        clerk.org_permissions(), clerk.has_permission(permission);
END
$$;

-- actions p0, p1, ... as a v2 per claim
CREATE FUNCTION rls_actions(n int) RETURNS text LANGUAGE sql
AS $$ SELECT string_agg('p' || i, ',' ORDER BY i) FROM generate_series(0, n - 1) i $$;

-- v1: org_* claims as they are
SELECT c.name, r.*
  FROM (VALUES
    (1, 'v1', '{"sub": "user_1", "sid": "sess_1", "org_id": "org_1", "org_role": "org:admin", "org_slug": "acme",
                "org_permissions": ["org:admin:example_permission", "org:member:example_permission"]}',
        'org:member:example_permission'),
    (2, 'v1, v: 1', '{"v": 1, "sub": "user_1", "org_id": "org_1", "org_role": "org:member", "org_permissions": []}',
        'org:member:example_permission'),
    (3, 'v1, no org', '{"sub": "user_1", "sid": "sess_1"}', 'org:admin:example_permission'),
    (4, 'v1, old role', '{"sub": "user_1", "org_id": "org_1", "org_role": "admin"}', 'org:admin:example_permission'),
    (5, 'v1, no permissions', '{"sub": "user_1", "org_id": "org_1", "org_role": "org:admin"}', 'org:x:y'),
    (6, 'v1, claims without org_id', '{"sub": "user_1", "org_role": "org:admin", "org_slug": "acme",
                "org_permissions": ["org:x:y"]}', 'org:x:y'),
    (7, 'v "2" (a string) is v1', '{"v": "2", "sub": "user_1", "o": {"id": "org_1", "rol": "admin"}}', 'org:x:y'),
    (8, 'v 3 is v1', '{"v": 3, "sub": "user_1", "org_id": "org_1", "o": {"id": "org_2"}}', 'org:x:y')
  ) c(n, name, claims, permission), rls_read(c.claims, c.permission) r
 ORDER BY c.n;

-- v2: the o claim; permissions decoded from o.per, o.fpm and fea
SELECT c.name, r.*
  FROM (VALUES
    (1, 'docs: dashboard, teams', '{"sub": "user_1", "v": 2, "fea": "o:dashboard,o:teams",
        "o": {"id": "org_1", "rol": "admin", "slg": "acme", "per": "manage,read", "fpm": "3,2"}}', 'org:teams:read'),
    (2, 'docs: no teams:manage', '{"sub": "user_1", "v": 2, "fea": "o:dashboard,o:teams",
        "o": {"id": "org_1", "rol": "admin", "slg": "acme", "per": "manage,read", "fpm": "3,2"}}', 'org:teams:manage'),
    (3, 'e2e: four features', '{"sub": "user_1", "v": 2, "fea": "o:billing,o:impersonation,o:magic_links,o:posts",
        "o": {"id": "org_1", "rol": "admin", "per": "create,delete,manage,read", "fpm": "12,12,9,14"}}',
        'org:magic_links:create'),
    (4, 'auth object example', '{"v": 2, "sub": "user_1", "fea": "o:example-feature", "pla": "o:free_org",
        "o": {"fpm": "1", "id": "org_123", "per": "example-perm", "rol": "admin", "slg": "example-org"}}',
        'org:example-feature:example-perm'),
    (5, 'sdk test: 7,21', '{"v": 2, "sub": "user_1", "fea": "o:repositories,o:projects",
        "o": {"id": "org_1", "rol": "member", "per": "read,create,update,delete,revoke", "fpm": "7,21"}}',
        'org:projects:revoke'),
    (6, 'v 2.0 is v2', '{"v": 2.0, "sub": "user_1", "fea": "o:a", "o": {"id": "org_1", "rol": "admin", "per": "x", "fpm": "1"}}',
        'org:a:x'),
    (7, 'no o', '{"v": 2, "sub": "user_1", "fea": "u:gold", "pla": "u:free"}', 'org:a:x'),
    (8, 'o without rol, slg', '{"v": 2, "sub": "user_1", "o": {"id": "org_1"}}', 'org:a:x'),
    (9, 'o without id', '{"v": 2, "sub": "user_1", "fea": "o:a", "o": {"rol": "admin", "slg": "acme", "per": "x", "fpm": "1"}}',
        'org:a:x'),
    (10, 'o without per, fpm', '{"v": 2, "sub": "user_1", "fea": "o:a", "o": {"id": "org_1", "rol": "admin"}}', 'org:a:x'),
    (11, 'no fea', '{"v": 2, "sub": "user_1", "o": {"id": "org_1", "rol": "admin", "per": "x", "fpm": "1"}}', 'org:a:x'),
    (12, 'empty fea', '{"v": 2, "sub": "user_1", "fea": "", "o": {"id": "org_1", "rol": "admin", "per": "x", "fpm": "1"}}', 'org:a:x'),
    (13, 'empty rol', '{"v": 2, "sub": "user_1", "o": {"id": "org_1", "rol": ""}}', 'org:a:x'),
    (14, 'white space trimmed', '{"v": 2, "sub": "user_1", "fea": " o:a , o:b ",
        "o": {"id": "org_1", "rol": "admin", "per": " read , write ", "fpm": " 3 , 2 "}}', 'org:b:write')
  ) c(n, name, claims, permission), rls_read(c.claims, c.permission) r
 ORDER BY c.n;

-- which mask belongs to which feature: the whole fea list (Clerk's
-- documentation), or the organization features when fpm has one mask for
-- each of those and not one for each entry (Clerk's JavaScript SDK)
SELECT c.name, r.permissions
  FROM (VALUES
    (1, 'u: last, a mask each', 'o:repositories,uo:projects,u:goldprofileborder', 'read,create,update,delete,revoke', '7,21,0'),
    (2, 'u: first, a mask each', 'u:gold,o:posts', 'read,write', '3,1'),
    (3, 'u: first, masks for o: only', 'u:gold,o:posts', 'read,write', '1'),
    (4, 'ou: and uo: are the organization''s', 'ou:a,uo:b,u:c', 'read', '1,1,1'),
    (5, 'neither count: the whole list', 'u:a,o:b,o:c', 'read', '1'),
    (6, 'more masks than features', 'o:a', 'read', '1,1,1'),
    (7, 'fewer masks than features', 'o:a,o:b,o:c', 'read', '1')
  ) c(n, name, fea, per, fpm),
  rls_read(jsonb_build_object('v', 2, 'sub', 'user_1', 'fea', c.fea,
           'o', jsonb_build_object('id', 'org_1', 'rol', 'admin', 'per', c.per, 'fpm', c.fpm))::text, NULL) r
 ORDER BY c.n;

-- malformed pieces grant nothing, never an error; masks of any size are exact
SELECT c.name, r.permissions
  FROM (VALUES
    (1, 'bad masks keep alignment', 'o:a,o:b,o:c,o:d,o:e,o:f,o:g', 'x', '1invalid,-1,1.5,, ,+1,01'),
    (2, 'fea entry without a colon', 'dashboard,o:teams', 'read', '1,1'),
    (3, 'empty fea entry', 'o:x,,o:y', 'read', '1,1,1'),
    (4, 'unknown scope', 'x:foo,o:bar', 'read', '1,1'),
    (5, 'feature without a name', 'o:,o:b', 'read', '1,1'),
    (6, 'a colon in the feature', 'o:a:b', 'read', '1'),
    (7, 'empty action', 'o:a', 'read,,write', '7'),
    (8, 'bits beyond the actions', 'o:a', 'read', '6'),
    (9, '2^54 with 54 actions', 'o:f', rls_actions(54), '18014398509481984'),
    (10, '2^53 + 1 with 54 actions', 'o:f', rls_actions(54), '9007199254740993'),
    (11, '2^32 with 33 actions', 'o:f', rls_actions(33), '4294967296'),
    (12, '2^64 + 1 with 65 actions', 'o:f', rls_actions(65), '18446744073709551617'),
    (13, '2^200 + 1 with 201 actions', 'o:f', rls_actions(201), '1606938044258990275541962092341162602522202993782792835301377'),
    (14, '10^9999 + 1 (10,000 digits)', 'o:f', 'x,y,z', '1' || repeat('0', 9998) || '1'),
    (15, '10^9999 (no bit below 9999)', 'o:f', 'x,y,z', '1' || repeat('0', 9999))
  ) c(n, name, fea, per, fpm),
  rls_read(jsonb_build_object('v', 2, 'sub', 'user_1', 'fea', c.fea,
           'o', jsonb_build_object('id', 'org_1', 'rol', 'admin', 'per', c.per, 'fpm', c.fpm))::text, NULL) r
 ORDER BY c.n;

-- claims of the wrong type are absent
SELECT c.name, r.*
  FROM (VALUES
    (1, 'sub a number', '{"sub": 42, "org_id": "org_1"}', 'org:x:y'),
    (2, 'empty sub', '{"sub": "", "org_id": "org_1"}', 'org:x:y'),
    (3, 'org_id a number', '{"sub": "user_1", "org_id": 1, "org_role": "org:admin", "org_permissions": ["org:x:y"]}', 'org:x:y'),
    (4, 'org_permissions a string', '{"sub": "user_1", "org_id": "org_1", "org_permissions": "org:x:y"}', 'org:x:y'),
    (5, 'org_permissions with non-strings', '{"sub": "user_1", "org_id": "org_1",
        "org_permissions": [1, null, "org:x:y", ["org:x:z"], {"a": "org:x:z"}, ""]}', 'org:x:z'),
    (6, 'org_role an object', '{"sub": "user_1", "org_id": "org_1", "org_role": {"r": "org:admin"}}', 'org:x:y'),
    (7, 'o a string', '{"v": 2, "sub": "user_1", "o": "org_1"}', 'org:x:y'),
    (8, 'o an array', '{"v": 2, "sub": "user_1", "o": [{"id": "org_1"}]}', 'org:x:y'),
    (9, 'o.id a number', '{"v": 2, "sub": "user_1", "o": {"id": 1, "rol": "admin"}}', 'org:x:y'),
    (10, 'o.rol a number', '{"v": 2, "sub": "user_1", "o": {"id": "org_1", "rol": 1, "slg": true}}', 'org:x:y'),
    (11, 'per, fpm, fea numbers', '{"v": 2, "sub": "user_1", "fea": 1, "o": {"id": "org_1", "rol": "admin", "per": 1, "fpm": 1}}',
        'org:x:y'),
    (12, 'fpm an array', '{"v": 2, "sub": "user_1", "fea": "o:x", "o": {"id": "org_1", "rol": "admin", "per": "y", "fpm": [1]}}',
        'org:x:y'),
    (13, 'an array', '[{"sub": "user_1"}]', 'org:x:y'),
    (14, 'a string', '"user_1"', 'org:x:y'),
    (15, 'null', 'null', 'org:x:y'),
    (16, 'a number', '42', 'org:x:y'),
    (17, 'empty', '', 'org:x:y'),
    (18, 'white space', ' ', 'org:x:y'),
    (19, 'NUL escaped (repaired as a sync repairs it)', '{"sub": "user_\u0000"}', 'org:x:y')
  ) c(n, name, claims, permission), rls_read(c.claims, c.permission) r
 ORDER BY c.n;

-- a NULL argument gives NULL
SET request.jwt.claims = '{"sub": "user_1", "org_id": "org_1", "org_permissions": ["org:x:y"]}';
SELECT clerk.has_permission(NULL), clerk.is_member(NULL), clerk.org_role_in(NULL);

-- a setting that is not JSON is an error (22P02), for each function that reads it
SET request.jwt.claims = '{"sub": "user_1"';
SELECT clerk.user_id();
SET request.jwt.claims = '{"sub": "user_1"} trailing';
SELECT clerk.org_id();
\set VERBOSITY sqlstate
SELECT clerk.org_role();
SELECT clerk.org_slug();
SELECT clerk.org_permissions();
SELECT clerk.has_permission('org:x:y');
SELECT clerk.is_member('org_1');
SELECT clerk.org_role_in('org_1');
\set VERBOSITY default
-- and valid again once it is
SET request.jwt.claims = '{"sub": "user_1"}';
SELECT clerk.user_id();

-- SET LOCAL ends with the transaction; an empty setting is no token
BEGIN;
SET LOCAL request.jwt.claims = '{"sub": "user_2", "org_id": "org_2"}';
SELECT clerk.user_id(), clerk.org_id();
COMMIT;
RESET request.jwt.claims;
SELECT current_setting('request.jwt.claims', true) AS setting, clerk.user_id(), clerk.org_id(),
       clerk.has_permission('org:x:y'), clerk.is_member('org_1');

-- ---- memberships, synced as a sync writes them ----

TRUNCATE clerk.users, clerk.organizations, clerk.organization_members;
SELECT clerk_apply_page('organizations', '{"data": [
  {"id": "org_acme", "name": "Acme", "slug": "acme", "members_count": 2},
  {"id": "org_globex", "name": "Globex", "slug": "globex", "members_count": 1},
  {"id": "org_initech", "name": "Initech", "slug": "initech", "members_count": 1}], "total_count": 3}');
SELECT clerk_apply_page('memberships', '{"data": [
  {"id": "mem_ada_acme", "organization": {"id": "org_acme"}, "public_user_data": {"user_id": "user_ada"},
   "role": "org:admin", "updated_at": 2000},
  {"id": "mem_ada_acme_old", "organization": {"id": "org_acme"}, "public_user_data": {"user_id": "user_ada"},
   "role": "org:member", "updated_at": 1000},
  {"id": "mem_ada_globex", "organization": {"id": "org_globex"}, "public_user_data": {"user_id": "user_ada"},
   "role": "org:member", "updated_at": 1000},
  {"id": "mem_ada_initech", "organization": {"id": "org_initech"}, "public_user_data": {"user_id": "user_ada"},
   "role": "org:admin", "updated_at": 1000},
  {"id": "mem_bob_acme", "organization": {"id": "org_acme"}, "public_user_data": {"user_id": "user_bob"},
   "role": "org:member", "updated_at": 1000},
  {"id": "mem_carol_initech", "organization": {"id": "org_initech"}, "public_user_data": {"user_id": "user_carol"},
   "role": "org:member", "updated_at": 1000}]}');
-- Ada left Initech: her membership there is soft-deleted and no longer counts
UPDATE clerk.organization_members SET deleted_at = now() WHERE id = 'mem_ada_initech';

-- whose memberships count: the token's user's, live ones, in any organization
-- (two live rows for one organization, as after a missed deletion: the newest)
CREATE FUNCTION rls_memberships(sub text)
RETURNS TABLE (org text, member boolean, role text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', jsonb_build_object('sub', sub)::text, true);
    RETURN QUERY SELECT o.org, clerk.is_member(o.org), clerk.org_role_in(o.org)
                   FROM (VALUES ('org_acme'), ('org_globex'), ('org_initech'), ('org_unknown')) o(org);
END
$$;
SELECT u.sub, m.*
  FROM (VALUES ('user_ada'), ('user_bob'), ('user_carol'), ('user_nobody')) u(sub), rls_memberships(u.sub) m
 ORDER BY u.sub, m.org;

-- no user in the token: no membership
SET request.jwt.claims = '{"org_id": "org_acme", "org_role": "org:admin"}';
SELECT clerk.is_member('org_acme'), clerk.org_role_in('org_acme');
RESET request.jwt.claims;

-- in PL/pgSQL a call site lives for the transaction: what it answers follows
-- the rows the statement sees, and the token's user
BEGIN;
SET LOCAL request.jwt.claims = '{"sub": "user_ada"}';
DO $$
BEGIN
    FOR i IN 1..4 LOOP
        RAISE NOTICE 'round %: % is a member of Globex: %, as %', i, clerk.user_id(),
            clerk.is_member('org_globex'), clerk.org_role_in('org_globex');
        IF i = 1 THEN
            UPDATE clerk.organization_members SET role = 'org:admin' WHERE id = 'mem_ada_globex';
        ELSIF i = 2 THEN
            UPDATE clerk.organization_members SET deleted_at = now() WHERE id = 'mem_ada_globex';
        ELSE
            PERFORM set_config('request.jwt.claims', '{"sub": "user_bob"}', true);
            UPDATE clerk.organization_members SET organization_id = 'org_globex' WHERE id = 'mem_bob_acme';
        END IF;
    END LOOP;
END
$$;
ROLLBACK;

-- ---- doc/row-level-security.md's example, as written ----

CREATE ROLE invoice_app NOLOGIN;

CREATE TABLE invoices (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id   text NOT NULL,
    customer text NOT NULL,
    amount   numeric(12, 2) NOT NULL,
    paid     boolean NOT NULL DEFAULT false
);
CREATE INDEX invoices_org_id_idx ON invoices (org_id);
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;

-- members read the invoices of each organization they belong to
CREATE POLICY invoices_member_read ON invoices FOR SELECT TO invoice_app
    USING (clerk.is_member(org_id));

-- admins of the active organization create, change and delete its invoices
CREATE POLICY invoices_admin_write ON invoices FOR ALL TO invoice_app
    USING (org_id = clerk.org_id() AND clerk.org_role() = 'org:admin')
    WITH CHECK (org_id = clerk.org_id() AND clerk.org_role() = 'org:admin');

-- holders of org:invoices:manage in the active organization change its invoices
CREATE POLICY invoices_manage ON invoices FOR UPDATE TO invoice_app
    USING (org_id = clerk.org_id() AND clerk.has_permission('org:invoices:manage'))
    WITH CHECK (org_id = clerk.org_id() AND clerk.has_permission('org:invoices:manage'));

-- what invoice_app needs: the schema and the functions its policies call, and its own table
GRANT USAGE ON SCHEMA clerk TO invoice_app;
GRANT EXECUTE ON FUNCTION clerk.is_member(text), clerk.org_id(), clerk.org_role(),
      clerk.has_permission(text) TO invoice_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO invoice_app;

-- the invoices, written by their owner
INSERT INTO invoices (org_id, customer, amount) VALUES
    ('org_acme', 'Wayne', 100), ('org_acme', 'Stark', 200),
    ('org_globex', 'Kent', 300), ('org_initech', 'Lumbergh', 400);

-- the doc's request: Ada, admin of the active organization Acme (v2 token)
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2, "o": {"id": "org_acme", "rol": "admin"}}';
SELECT org_id, customer FROM invoices;      -- org_acme's, and those of her other organizations
INSERT INTO invoices (org_id, customer, amount) VALUES ('org_acme', 'Wayne', 40);
COMMIT;

-- Ada sees Acme's and Globex's (a member), not Initech's (she left it);
-- she changes and deletes Acme's, not Globex's
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2, "o": {"id": "org_acme", "rol": "admin"}}';
SELECT org_id, customer, amount, paid FROM invoices ORDER BY id;
UPDATE invoices SET amount = amount + 1 WHERE customer IN ('Stark', 'Kent') RETURNING org_id, customer, amount;
DELETE FROM invoices WHERE customer IN ('Wayne', 'Kent') RETURNING org_id, customer, amount;
SELECT org_id, customer, amount FROM invoices ORDER BY id;
ROLLBACK;
-- nor does she create one for Globex, where she is a member only
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2, "o": {"id": "org_acme", "rol": "admin"}}';
INSERT INTO invoices (org_id, customer, amount) VALUES ('org_globex', 'Wayne', 40);
ROLLBACK;

-- Bob, a member of Acme holding org:invoices:manage (v2: fea o:invoices, per manage,read, fpm 1):
-- he reads Acme's and marks them paid, and neither creates nor deletes one
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_bob", "v": 2, "fea": "o:invoices",
    "o": {"id": "org_acme", "rol": "member", "per": "manage,read", "fpm": "1"}}';
SELECT clerk.has_permission('org:invoices:manage');
UPDATE invoices SET paid = true WHERE customer = 'Wayne' RETURNING org_id, customer, amount;
DELETE FROM invoices RETURNING org_id, customer;
SELECT org_id, customer, amount, paid FROM invoices ORDER BY id;
ROLLBACK;
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_bob", "v": 2, "fea": "o:invoices",
    "o": {"id": "org_acme", "rol": "member", "per": "manage,read", "fpm": "1"}}';
INSERT INTO invoices (org_id, customer, amount) VALUES ('org_acme', 'Bob', 1);
ROLLBACK;
-- nor moves one to another organization
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_bob", "v": 2, "fea": "o:invoices",
    "o": {"id": "org_acme", "rol": "member", "per": "manage,read", "fpm": "1"}}';
UPDATE invoices SET org_id = 'org_globex' WHERE customer = 'Stark';
ROLLBACK;

-- Bob with read only (fpm 2): reads, changes nothing
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_bob", "v": 2, "fea": "o:invoices",
    "o": {"id": "org_acme", "rol": "member", "per": "manage,read", "fpm": "2"}}';
SELECT clerk.has_permission('org:invoices:manage'), clerk.has_permission('org:invoices:read');
UPDATE invoices SET paid = true RETURNING org_id, customer;
SELECT count(*) FROM invoices;
ROLLBACK;

-- Carol, a member of Initech (v1 token): Initech's only
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_carol", "org_id": "org_initech", "org_role": "org:member",
    "org_slug": "initech", "org_permissions": []}';
SELECT org_id, customer FROM invoices ORDER BY id;
UPDATE invoices SET paid = true RETURNING org_id, customer;
ROLLBACK;

-- Dave became admin of Acme after the last sync: the token's claims suffice
-- for the admin policy, the member policy waits for the sync
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_dave", "org_id": "org_acme", "org_role": "org:admin"}';
SELECT clerk.is_member('org_acme'), org_id, customer FROM invoices ORDER BY id;
ROLLBACK;

-- no token: nothing
BEGIN;
SET LOCAL ROLE invoice_app;
SELECT count(*) FROM invoices;
UPDATE invoices SET paid = true RETURNING org_id, customer;
ROLLBACK;

-- invoice_app has no right on the clerk tables; the lookup runs as
-- clerk_sync_writer and leaves the caller's role and search_path as they were
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada"}';
SELECT clerk.is_member('org_acme') AS member, current_user, current_setting('search_path') AS search_path;
SELECT count(*) FROM clerk.organization_members;
ROLLBACK;
BEGIN;
SET LOCAL ROLE invoice_app;
SELECT clerk.user_id();
ROLLBACK;

-- in a parallel worker too (PARALLEL SAFE)
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2, "o": {"id": "org_acme", "rol": "admin"}}';
-- (force_parallel_mode before PostgreSQL 16, debug_parallel_query since)
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', true) AS parallel;
EXPLAIN (COSTS OFF) SELECT clerk.is_member('org_globex'), clerk.org_role(), count(*) FROM invoices;
SELECT clerk.is_member('org_globex'), clerk.org_role(), count(*) FROM invoices;
ROLLBACK;

-- one lookup per call site, not per row: a query over 1,000 invoices reads
-- clerk.organization_members once (the policy's filter is one function
-- call), by one scan of organization_members_user_id_idx among 2,000 other
-- users' memberships
INSERT INTO invoices (org_id, customer, amount)
    SELECT (ARRAY['org_acme', 'org_globex', 'org_initech'])[i % 3 + 1], 'Customer ' || i, i FROM generate_series(1, 1000) i;
SELECT clerk_apply_page('memberships', (
    SELECT jsonb_agg(jsonb_build_object('id', 'mem_other_' || i, 'organization', jsonb_build_object('id', 'org_acme'),
                                        'public_user_data', jsonb_build_object('user_id', 'user_other_' || i),
                                        'role', 'org:member', 'updated_at', 1000))
      FROM generate_series(1, 2000) i)) ->> 'inserted' AS inserted;
ANALYZE clerk.organization_members;
BEGIN;
SET LOCAL ROLE invoice_app;
EXPLAIN (COSTS OFF) SELECT count(*) FROM invoices;
ROLLBACK;
SELECT pg_stat_force_next_flush();
SELECT t.seq_scan AS seq_before, i.idx_scan AS idx_before
  FROM pg_stat_user_tables t, pg_stat_user_indexes i
 WHERE t.relid = 'clerk.organization_members'::regclass
   AND i.indexrelid = 'clerk.organization_members_user_id_idx'::regclass \gset
BEGIN;
SET LOCAL ROLE invoice_app;
SET LOCAL request.jwt.claims = '{"sub": "user_ada", "v": 2, "o": {"id": "org_acme", "rol": "admin"}}';
SELECT count(*) FROM invoices;
COMMIT;
SELECT pg_stat_force_next_flush();
SELECT t.seq_scan - :seq_before AS seq_scans, i.idx_scan - :idx_before AS user_id_index_scans
  FROM pg_stat_user_tables t, pg_stat_user_indexes i
 WHERE t.relid = 'clerk.organization_members'::regclass
   AND i.indexrelid = 'clerk.organization_members_user_id_idx'::regclass;

DROP TABLE invoices;
REVOKE ALL ON FUNCTION clerk.is_member(text), clerk.org_id(), clerk.org_role(),
       clerk.has_permission(text) FROM invoice_app;
REVOKE ALL ON SCHEMA clerk FROM invoice_app;
DROP ROLE invoice_app;
DROP FUNCTION rls_read(text, text);
DROP FUNCTION rls_actions(int);
DROP FUNCTION rls_memberships(text);
TRUNCATE clerk.users, clerk.organizations, clerk.organization_members;
