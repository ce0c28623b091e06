-- The repair every write path applies (clerk_repair_json() shows it on its
-- own), identity columns that hold verified values only, clerk_apply_page()
-- given text or json, and the ordering rule on the page path.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;
SET timezone = 'UTC';

-- \u0000 and unpaired surrogates become U+FFFD; a pair stays
SELECT value, repairs FROM clerk_repair_json(convert_to('{"note": "a\u0000b"}', 'UTF8'));
SELECT value, repairs FROM clerk_repair_json(convert_to('{"s": "\ud800x", "t": "\udc00", "pair": "\ud83d\ude00"}', 'UTF8'));
-- each byte of invalid UTF-8 becomes U+FFFD; valid UTF-8 is left alone
SELECT value, repairs FROM clerk_repair_json('\x7b2262223a2261ff62227d'::bytea);
SELECT value, repairs FROM clerk_repair_json('\x7b2262223a22eda080227d'::bytea);
SELECT value, repairs FROM clerk_repair_json('\x7b2262223a22c3a9e282ac227d'::bytea);
-- numbers numeric cannot hold are kept as strings, at numeric's exact limits
SELECT jsonb_typeof(value -> 0) AS e131071, value -> 1 AS e131072, value -> 2 AS e131073,
       jsonb_typeof(value -> 3) AS e_16383, value -> 4 AS e_16384, value -> 5 AS zero, value -> 6 AS plain,
       repairs
  FROM clerk_repair_json(convert_to('[1e131071, 1e131072, 0.1e131073, 1e-16383, 1e-16384, 0e999999999, -12.5e3]', 'UTF8'));
-- keys are repaired too; paths name the field within each list element
SELECT value, repairs FROM clerk_repair_json(convert_to(
  '{"data": [{"id": "u1", "m": {"k\u0000": [1, "\u0000"]}}, {"id": "u2"}], "total_count": 2}', 'UTF8'));
-- nothing to repair: the value jsonb itself gives
SELECT value = '{"a": [1, 2.5, "x"], "b": null}'::jsonb AS same, repairs
  FROM clerk_repair_json(convert_to('{"a": [1, 2.5, "x"], "b": null}', 'UTF8'));
-- deeper than jsonb can convert: no value, and not an error
SELECT value IS NULL AS not_storable, repairs
  FROM clerk_repair_json(convert_to(repeat('[', 100000) || repeat(']', 100000), 'UTF8'));
-- text that is not JSON at all is an error
SELECT * FROM clerk_repair_json(convert_to('{"a": ', 'UTF8'));
SELECT * FROM clerk_repair_json(convert_to('{"a": "x"} trailing', 'UTF8'));
SELECT * FROM clerk_repair_json(convert_to(E'{"a": "x\ty"}', 'UTF8'));
SELECT * FROM clerk_repair_json(convert_to('{"a": 01}', 'UTF8'));

-- clerk_apply_page() with text: the repaired object is stored, counted and
-- audited; an element that is not an object fails alone
TRUNCATE clerk.users;
SELECT coalesce(max(id), 0) AS audit_start FROM clerk.audit_logs \gset
SELECT clerk_apply_page('users', '[{"id": "user_r1", "first_name": "Nul\u0000l", "unsafe_metadata": {"big": 1e200000}, "updated_at": 1},
                                  {"id": "user_r2", "first_name": "Fine", "updated_at": 1}, 42]');
SELECT id, first_name, unsafe_metadata, raw -> 'unsafe_metadata' AS raw_unsafe FROM clerk.users ORDER BY id;
SELECT action, entity_id, details FROM clerk.audit_logs WHERE id > :audit_start ORDER BY id;
-- the same page again: repaired again, nothing written
SELECT clerk_apply_page('users', '[{"id": "user_r1", "first_name": "Nul\u0000l", "unsafe_metadata": {"big": 1e200000}, "updated_at": 1}]');
-- as json
SELECT clerk_apply_page('users', '{"id": "user_r3", "last_name": "\ud800"}'::json);
SELECT last_name FROM clerk.users WHERE id = 'user_r3';
-- a jsonb argument fails in the caller's cast, before the function runs
SELECT clerk_apply_page('users', '{"id": "user_r4", "last_name": "\u0000"}'::jsonb);
-- a page that is not JSON
SELECT clerk_apply_page('users', '[{"id": ');

-- identity columns hold verified values only; the rest stays in raw
SELECT clerk_apply_page('users', '{"id": "user_v", "updated_at": 1,
  "primary_email_address_id": "e2", "email_addresses": [
    {"id": "e1", "email_address": "someone-else@example.com", "verification": {"status": "unverified"}},
    {"id": "e2", "email_address": "claimed@example.com", "verification": null},
    {"id": "e3", "email_address": "own@example.com", "verification": {"status": "verified"}}],
  "primary_phone_number_id": "p1",
  "phone_numbers": [{"id": "p1", "phone_number": "+15555550199", "verification": {"status": "verified"}}]}');
SELECT primary_email, email_addresses, primary_phone, jsonb_array_length(raw -> 'email_addresses') AS in_raw
  FROM clerk.users WHERE id = 'user_v';

-- the ordering rule: a page never writes over a newer row ...
SELECT clerk_apply_page('users', '{"id": "user_o", "first_name": "New", "updated_at": 2000}') ->> 'inserted' AS inserted;
SELECT clerk_apply_page('users', '{"id": "user_o", "first_name": "Old", "updated_at": 1000}') ->> 'updated' AS updated;
SELECT first_name FROM clerk.users WHERE id = 'user_o';
-- ... nor revives a row deleted after the page was fetched (a page applied
-- in a transaction counts as fetched when the transaction started) ...
BEGIN;
UPDATE clerk.users SET deleted_at = clock_timestamp() WHERE id = 'user_o';
SELECT clerk_apply_page('users', '{"id": "user_o", "first_name": "Newer", "updated_at": 3000}') ->> 'updated' AS updated;
SELECT first_name, deleted_at IS NOT NULL AS deleted FROM clerk.users WHERE id = 'user_o';
COMMIT;
-- ... but a row deleted before the page was fetched comes back
UPDATE clerk.users SET deleted_at = '2020-01-01' WHERE id = 'user_o';
SELECT clerk_apply_page('users', '{"id": "user_o", "first_name": "Back", "updated_at": 4000}') ->> 'updated' AS updated;
SELECT first_name, deleted_at IS NOT NULL AS deleted FROM clerk.users WHERE id = 'user_o';

-- nobody but the owner may call the new functions
SELECT p.oid::regprocedure FROM pg_proc p
 WHERE p.proname IN ('clerk_repair_json', 'clerk_apply_page') AND has_function_privilege('public', p.oid, 'EXECUTE');
TRUNCATE clerk.users;
