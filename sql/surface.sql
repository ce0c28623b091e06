-- The SQL surface without the network: pages applied through the sync's
-- write path, the summary and listing functions, and permissions.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;
SET timezone = 'UTC';

TRUNCATE clerk.users, clerk.organizations, clerk.organization_members;

-- the same write path as a sync: insert, then nothing to do, then an update
SELECT clerk_apply_page('users', '[
  {"id": "user_a", "first_name": "Ada", "primary_email_address_id": "e1",
   "email_addresses": [{"id": "e1", "email_address": "ada@example.com", "verification": {"status": "verified"}}], "updated_at": 1},
  {"id": "user_b", "first_name": "Bob", "updated_at": 1}]');
SELECT clerk_apply_page('users', '[{"id": "user_a", "first_name": "Ada", "primary_email_address_id": "e1",
   "email_addresses": [{"id": "e1", "email_address": "ada@example.com", "verification": {"status": "verified"}}], "updated_at": 1}]');
SELECT clerk_apply_page('users', '[{"id": "user_b", "first_name": "Robert", "updated_at": 2}]');
SELECT id, first_name, primary_email FROM clerk.users ORDER BY id;

SELECT clerk_apply_page('organizations', '{"data": [
  {"id": "org_1", "name": "Acme", "slug": "acme", "members_count": 2},
  {"id": "org_2", "name": "Globex", "slug": "globex", "members_count": 5}], "total_count": 2}');
SELECT clerk_apply_page('memberships', '{"data": [
  {"id": "mem_1", "organization": {"id": "org_1"}, "public_user_data": {"user_id": "user_a"}, "role": "org:admin"},
  {"id": "mem_2", "organization": {"id": "org_1"}, "public_user_data": {"user_id": "user_b"}, "role": "org:member"},
  {"id": "mem_3", "organization": {"id": "org_9"}, "public_user_data": {"user_id": "user_zz"}, "role": "org:member"}]}');

-- a record Postgres rejects fails alone; the rest of the page is stored
SELECT clerk_apply_page('users', '[{"id": "user_c", "created_at": "yesterday"}, {"id": "user_d"}]');
SELECT id FROM clerk.users WHERE id IN ('user_c', 'user_d');
SELECT action, entity_type, entity_id, details ->> 'sqlstate' AS sqlstate
  FROM clerk.audit_logs WHERE action = 'sync.record_failed' ORDER BY id DESC LIMIT 1;

SELECT clerk_apply_page('groups', '[]');

-- summary with integrity findings: Bob has no primary email (user_d, deleted, does not count),
-- Globex claims 5 members and has none stored, mem_3 points at nothing
UPDATE clerk.users SET deleted_at = now() WHERE id = 'user_d';
SELECT entity, total, active, soft_deleted, last_synced IS NOT NULL AS synced, findings
  FROM clerk_database_summary();
SELECT id, name, slug, members_count, memberships_stored FROM clerk_organizations();

SELECT count(*) FROM clerk_sync_logs(5);
SELECT jsonb_object_keys(clerk_status()) ORDER BY 1;
SELECT clerk_set_secret_key('sk_test_mock_surface_only');
SELECT clerk_status() -> 'config' ? 'secret_key_configured' AS says_whether_configured,
       clerk_status()::text LIKE '%sk_test_mock_surface_only%' AS shows_key;
SELECT clerk_set_secret_key('');
-- the library's version and the installed SQL's
SELECT clerk_status() -> 'version' ->> 'library' = clerk_library_version() AS library_version,
       clerk_status() -> 'version' ->> 'extension' =
         (SELECT extversion FROM pg_extension WHERE extname = 'clerk_sync') AS extension_version;
SELECT count(*) FROM clerk.sync_progress;

-- nothing is granted to PUBLIC
SELECT p.proname
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'clerk_sync'
 WHERE has_function_privilege('public', p.oid, 'EXECUTE') AND d.deptype = 'e';
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'clerk' AND c.relkind IN ('r', 'v', 'S')
   AND (c.relacl IS NULL OR aclcontains(c.relacl, makeaclitem(0, c.relowner, 'SELECT', false)));

-- every function, table and view of the extension says what it is
SELECT pg_describe_object(d.classid, d.objid, 0) AS without_comment
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'clerk_sync'
 WHERE d.deptype = 'e' AND d.classid IN ('pg_proc'::regclass, 'pg_class'::regclass)
   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
   AND NOT (d.classid = 'pg_class'::regclass
            AND (SELECT relkind FROM pg_class WHERE oid = d.objid) NOT IN ('r', 'v', 'm', 'p'))
 ORDER BY 1;

CREATE ROLE clerk_surface_nobody;
CREATE ROLE clerk_surface_operator;
GRANT EXECUTE ON FUNCTION clerk_status(), clerk_database_summary(), clerk_organizations(),
      clerk_sync_logs(integer) TO clerk_surface_operator;
SET ROLE clerk_surface_nobody;
SELECT clerk_status();
SELECT * FROM clerk_sync_all();
SELECT clerk_sync_cancel(1);
SELECT count(*) FROM clerk.users;
SELECT clerk_apply_page('users', '[]');
RESET ROLE;
SET ROLE clerk_surface_operator;
SELECT (clerk_status() -> 'rows' ->> 'users')::int AS users;
SELECT count(*) FROM clerk_organizations();
SELECT count(*) FROM clerk.users;
SELECT * FROM clerk_sync_all();
RESET ROLE;
DROP ROLE clerk_surface_nobody;
REVOKE ALL ON FUNCTION clerk_status(), clerk_database_summary(), clerk_organizations(),
       clerk_sync_logs(integer) FROM clerk_surface_operator;
DROP ROLE clerk_surface_operator;
TRUNCATE clerk.users, clerk.organizations, clerk.organization_members;
