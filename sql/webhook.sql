-- clerk_handle_webhook(): Svix verification, every stored event type,
-- duplicates, out-of-order delivery, tombstones, pruning and permissions.
--
-- The official Svix test vector is used verbatim.  Every other delivery is
-- signed here with pgcrypto's hmac(), independently of the C code, with an
-- obviously fake secret, and the clock is fixed with clerk_sync.webhook_now.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SET timezone = 'UTC';
\pset null '(null)'

-- The result of a call, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(body text, id text, ts text, sig text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN clerk_handle_webhook(body, id, ts, sig);
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Svix's signature: v1,base64(HMAC-SHA256(key, "id.timestamp.body")).
CREATE FUNCTION pg_temp.svix_sign(secret text, id text, ts bigint, body text) RETURNS text
LANGUAGE sql AS $$
    SELECT 'v1,' || encode(hmac(convert_to(id || '.' || ts || '.' || body, 'UTF8'),
                                decode(regexp_replace(secret, '^whsec_', ''), 'base64'),
                                'sha256'), 'base64')
$$;

-- The endpoint's secret: stored in the vault (no setting holds a secret),
-- and kept in a setting of this test's own for signing.
CREATE FUNCTION pg_temp.use_secret(secret text) RETURNS void
LANGUAGE sql AS $$
    SELECT clerk_set_webhook_secret(secret);
    SELECT set_config('regress.webhook_secret', secret, false);
$$;

-- One delivery of a Clerk event, signed with the configured secret at the fixed clock.
CREATE FUNCTION pg_temp.delivery(id text, type text, data jsonb, event_ms bigint DEFAULT 1700000000000,
                                 OUT body text, OUT svix_id text, OUT ts text, OUT sig text)
LANGUAGE sql AS $$
    SELECT b, id, current_setting('clerk_sync.webhook_now'),
           pg_temp.svix_sign(current_setting('regress.webhook_secret'), id,
                             current_setting('clerk_sync.webhook_now')::bigint, b)
    FROM (SELECT jsonb_build_object('data', data, 'object', 'event', 'type', type,
                                    'timestamp', event_ms, 'instance_id', 'ins_test_fake')::text) AS x(b)
$$;

CREATE FUNCTION pg_temp.deliver(id text, type text, data jsonb, event_ms bigint DEFAULT 1700000000000)
RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.try(d.body, d.svix_id, d.ts, d.sig) FROM pg_temp.delivery(id, type, data, event_ms) d
$$;

-- A Clerk user, organization and membership, as the API and webhooks send them.
CREATE FUNCTION pg_temp.user_obj(id text, first_name text, updated_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'id', id, 'object', 'user', 'external_id', NULL, 'username', 'wh_' || id,
        'first_name', first_name, 'last_name', 'Hook',
        'primary_email_address_id', 'idn_' || id, 'primary_phone_number_id', NULL,
        'email_addresses', jsonb_build_array(jsonb_build_object(
            'id', 'idn_' || id, 'object', 'email_address', 'email_address', id || '@example.com',
            'verification', jsonb_build_object('status', 'verified', 'strategy', 'admin'),
            'linked_to', '[]'::jsonb)),
        'phone_numbers', '[]'::jsonb, 'image_url', 'https://img.example.com/' || id,
        'has_image', false, 'banned', false, 'locked', false,
        'public_metadata', jsonb_build_object('plan', 'pro'), 'private_metadata', '{}'::jsonb,
        'unsafe_metadata', '{}'::jsonb, 'last_sign_in_at', NULL, 'last_active_at', NULL,
        'created_at', 1699990000000, 'updated_at', updated_ms)
$$;

CREATE FUNCTION pg_temp.org_obj(id text, name text, updated_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'object', 'organization', 'id', id, 'name', name, 'slug', lower(replace(name, ' ', '-')),
        'image_url', 'https://img.example.com/' || id, 'has_image', false,
        'max_allowed_memberships', 5, 'admin_delete_enabled', true,
        'public_metadata', '{}'::jsonb, 'private_metadata', '{}'::jsonb, 'created_by', 'user_wh_3',
        'created_at', 1699990000000, 'updated_at', updated_ms)
$$;

CREATE FUNCTION pg_temp.mem_obj(id text, org_id text, user_id text, role text, updated_ms bigint) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'object', 'organization_membership', 'id', id, 'role', role,
        'role_name', CASE role WHEN 'org:admin' THEN 'Admin' ELSE 'Member' END,
        'permissions', '["org:sys_profile:read"]'::jsonb,
        'public_metadata', '{}'::jsonb, 'private_metadata', '{}'::jsonb,
        'organization', pg_temp.org_obj(org_id, 'Webhook Org', 1699990000000),
        'public_user_data', jsonb_build_object('user_id', user_id, 'first_name', 'Member',
            'last_name', NULL, 'image_url', 'https://img.example.com/' || user_id, 'has_image', false,
            'identifier', user_id || '@example.com'),
        'created_at', 1699990000000, 'updated_at', updated_ms)
$$;

-- ==== Verification, with the official Svix vector ====
-- (secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
--  timestamp 1614265330, body {"test": 2432232314})
\set vbody '{"test": 2432232314}'
\set vid 'msg_p5jXN8AQM9LWM0D4loKWxJek'
\set vts '1614265330'
\set vsig 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
SET clerk_sync.webhook_now = 1614265330;

-- no secret configured
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig');

-- the vector's signature is accepted, with and without the whsec_ prefix;
-- its body is then refused as not being a Clerk event (the next check)
SELECT FROM pg_temp.use_secret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig');
SELECT FROM pg_temp.use_secret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig');
-- pgcrypto agrees with the vector
SELECT pg_temp.svix_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'vid', :'vts', :'vbody') = :'vsig' AS same;

-- a wrong secret, an altered body, id or timestamp, a signature one character off
SELECT FROM pg_temp.use_secret('whsec_dGVzdF9mYWtlX3dlYmhvb2tfc2VjcmV0X290aGVy');
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS wrong_secret;
SELECT FROM pg_temp.use_secret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT pg_temp.try('{"test": 2432232315}', :'vid', :'vts', :'vsig') AS altered_body;
SELECT pg_temp.try(:'vbody' || ' ', :'vid', :'vts', :'vsig') AS trailing_space;
SELECT pg_temp.try(:'vbody', 'msg_p5jXN8AQM9LWM0D4loKWxJel', :'vts', :'vsig') AS altered_id;
SELECT pg_temp.try(:'vbody', :'vid', '1614265331', :'vsig') AS altered_timestamp;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=') AS one_char_off;

-- several signatures: one valid v1 among decoys is enough; decoys alone are not;
-- only v1 counts (v2, v1a, no comma, empty)
SELECT pg_temp.try(:'vbody', :'vid', :'vts',
    'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= '
    || :'vsig' || ' v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=') AS one_of_several;
SELECT pg_temp.try(:'vbody', :'vid', :'vts',
    'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=') AS decoys_only;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=') AS v2_only;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=') AS v1a_only;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=') AS no_version;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'v1,dawfeoifkpqwoekfpqoekf') AS garbage;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', 'v1,') AS empty_v1;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', '  v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=  ') AS extra_spaces;

-- the timestamp: at most 300 seconds from the clock, either way
SET clerk_sync.webhook_now = 1614265630;     -- 300 s later
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS at_300s_old;
SET clerk_sync.webhook_now = 1614265631;     -- 301 s later
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS stale;
SET clerk_sync.webhook_now = 1614265030;     -- 300 s earlier
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS at_300s_ahead;
SET clerk_sync.webhook_now = 1614265029;     -- 301 s earlier
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS future;
SET clerk_sync.webhook_now = 0;              -- the real clock: the vector is years old
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') LIKE 'ERROR 22008: stale timestamp' AS real_clock;
SET clerk_sync.webhook_now = 1614265330;
SELECT pg_temp.try(:'vbody', :'vid', 'abc', :'vsig') AS not_a_number;
SELECT pg_temp.try(:'vbody', :'vid', '1614265330.0', :'vsig') AS fraction;
SELECT pg_temp.try(:'vbody', :'vid', ' 1614265330', :'vsig') AS leading_space;
SELECT pg_temp.try(:'vbody', :'vid', '99999999999999999999', :'vsig') AS overflow;

-- missing headers or body
SELECT pg_temp.try(NULL, :'vid', :'vts', :'vsig') AS no_body;
SELECT pg_temp.try(:'vbody', NULL, :'vts', :'vsig') AS no_id;
SELECT pg_temp.try(:'vbody', :'vid', '', :'vsig') AS empty_timestamp;
SELECT pg_temp.try(:'vbody', :'vid', :'vts', NULL) AS no_signature;

-- a secret that is not one is refused when it is stored (and the one
-- stored before stays in use): the prefix alone, not base64, and a key
-- shorter than the 24 bytes Svix's secrets have at least
SELECT FROM pg_temp.use_secret('whsec_');
SELECT FROM pg_temp.use_secret('whsec_not base64!');
SELECT FROM pg_temp.use_secret('whsec_AA==');
SELECT FROM pg_temp.use_secret('whsec_dGVzdF9mYWtlX3Nob3J0X2tleQ==');
SELECT pg_temp.try(:'vbody', :'vid', :'vts', :'vsig') AS still_the_vector_secret;

-- errors in full: what the endpoint's log shows (never the secret)
SELECT FROM pg_temp.use_secret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT clerk_handle_webhook('{"test": 2432232315}', :'vid', :'vts', :'vsig');
SELECT clerk_handle_webhook(:'vbody', :'vid', :'vts', 'v2,abc');
SET clerk_sync.webhook_now = 1700000000;
SELECT clerk_handle_webhook(:'vbody', :'vid', :'vts', :'vsig');
SELECT clerk_handle_webhook(:'vbody', :'vid', :'vts', NULL);

-- nothing was written by any of these
SELECT count(*) AS deliveries FROM clerk.webhook_deliveries WHERE svix_id = :'vid';

-- ==== Events ====
SELECT FROM pg_temp.use_secret('whsec_dGVzdF9mYWtlX3dlYmhvb2tfc2VjcmV0X3JlZ3Jlc3M=');
SET clerk_sync.webhook_now = 1700000000;

-- user.created, then the same delivery again (a Svix retry)
SELECT pg_temp.deliver('msg_wh_01', 'user.created', pg_temp.user_obj('user_wh_1', 'First', 1699990001000));
SELECT pg_temp.deliver('msg_wh_01', 'user.created', pg_temp.user_obj('user_wh_1', 'First', 1699990001000));
SELECT id, username, first_name, last_name, primary_email, email_addresses, image_url, public_metadata,
       created_at, updated_at, deleted_at
FROM clerk.users WHERE id = 'user_wh_1';

-- user.updated, then an older version delivered late: the newer one stays
SELECT pg_temp.deliver('msg_wh_02', 'user.updated', pg_temp.user_obj('user_wh_1', 'Third', 1699990003000));
SELECT pg_temp.deliver('msg_wh_03', 'user.updated', pg_temp.user_obj('user_wh_1', 'Second', 1699990002000));
SELECT first_name, updated_at FROM clerk.users WHERE id = 'user_wh_1';
-- the same version again, under another delivery id: nothing to do
SELECT pg_temp.deliver('msg_wh_04', 'user.updated', pg_temp.user_obj('user_wh_1', 'Third', 1699990003000));
-- same updated_at, different content: the later delivery wins
SELECT pg_temp.deliver('msg_wh_05', 'user.updated', pg_temp.user_obj('user_wh_1', 'Third bis', 1699990003000));
SELECT first_name FROM clerk.users WHERE id = 'user_wh_1';

-- the row is exactly what the sync's mapping makes of the object (all but synced_at)
SELECT to_jsonb(u) - 'synced_at' = to_jsonb(m) - 'synced_at' AS same_as_sync
FROM clerk.users u, clerk.map_users(pg_temp.user_obj('user_wh_1', 'Third bis', 1699990003000)) m
WHERE u.id = 'user_wh_1';

-- user.deleted carries only {id, object, deleted}: a soft delete at the event's time,
-- keeping the last known data; a late update does not resurrect it, even a newer one
SELECT pg_temp.deliver('msg_wh_06', 'user.deleted',
                       '{"id": "user_wh_1", "object": "user", "deleted": true}', 1700000100000);
SELECT pg_temp.deliver('msg_wh_07', 'user.updated', pg_temp.user_obj('user_wh_1', 'Zombie', 1700000200000));
SELECT first_name, deleted_at FROM clerk.users WHERE id = 'user_wh_1';

-- a deletion that arrives before the creation leaves a tombstone: the creation stays out
SELECT pg_temp.deliver('msg_wh_08', 'user.deleted',
                       '{"id": "user_wh_2", "object": "user", "deleted": true, "external_id": "ext-2"}', 1700000300000);
SELECT pg_temp.deliver('msg_wh_09', 'user.created', pg_temp.user_obj('user_wh_2', 'Late', 1699990001000));
SELECT id, first_name, email_addresses, deleted_at, raw FROM clerk.users WHERE id = 'user_wh_2';

-- organizations
SELECT pg_temp.deliver('msg_wh_10', 'organization.created', pg_temp.org_obj('org_wh_1', 'Webhook Org', 1699990001000));
SELECT pg_temp.deliver('msg_wh_11', 'organization.updated', pg_temp.org_obj('org_wh_1', 'Webhook Org Renamed', 1699990005000));
SELECT pg_temp.deliver('msg_wh_12', 'organization.updated', pg_temp.org_obj('org_wh_1', 'Webhook Org Old', 1699990004000));
SELECT id, name, slug, max_allowed_memberships, admin_delete_enabled, created_by, updated_at, deleted_at
FROM clerk.organizations WHERE id = 'org_wh_1';

-- memberships; organizationMembership.deleted carries the whole membership
SELECT pg_temp.deliver('msg_wh_13', 'user.created', pg_temp.user_obj('user_wh_3', 'Member3', 1699990001000));
SELECT pg_temp.deliver('msg_wh_14', 'organizationMembership.created',
                       pg_temp.mem_obj('orgmem_wh_1', 'org_wh_1', 'user_wh_3', 'org:member', 1699990001000));
SELECT pg_temp.deliver('msg_wh_15', 'organizationMembership.created',
                       pg_temp.mem_obj('orgmem_wh_2', 'org_wh_1', 'user_wh_4', 'org:member', 1699990001000));
SELECT pg_temp.deliver('msg_wh_16', 'organizationMembership.updated',
                       pg_temp.mem_obj('orgmem_wh_1', 'org_wh_1', 'user_wh_3', 'org:admin', 1699990002000));
SELECT pg_temp.deliver('msg_wh_17', 'organizationMembership.deleted',
                       pg_temp.mem_obj('orgmem_wh_2', 'org_wh_1', 'user_wh_4', 'org:member', 1699990001000),
                       1700000400000);
-- deleted before it was created: a tombstone with the whole membership
SELECT pg_temp.deliver('msg_wh_18', 'organizationMembership.deleted',
                       pg_temp.mem_obj('orgmem_wh_3', 'org_wh_1', 'user_wh_5', 'org:member', 1699990001000),
                       1700000500000);
SELECT pg_temp.deliver('msg_wh_19', 'organizationMembership.created',
                       pg_temp.mem_obj('orgmem_wh_3', 'org_wh_1', 'user_wh_5', 'org:member', 1699990001000));
SELECT id, organization_id, user_id, role, role_name, permissions, updated_at, deleted_at
FROM clerk.organization_members WHERE id LIKE 'orgmem_wh_%' ORDER BY id;
SELECT to_jsonb(t) - 'synced_at' = to_jsonb(m) - 'synced_at' AS same_as_sync
FROM clerk.organization_members t,
     clerk.map_memberships(pg_temp.mem_obj('orgmem_wh_1', 'org_wh_1', 'user_wh_3', 'org:admin', 1699990002000)) m
WHERE t.id = 'orgmem_wh_1';

-- organization.deleted: the organization and its live memberships are soft-deleted
SELECT pg_temp.deliver('msg_wh_20', 'organization.deleted',
                       '{"id": "org_wh_1", "object": "organization", "slug": "webhook-org-renamed", "deleted": true}',
                       1700000600000);
SELECT id, name, deleted_at FROM clerk.organizations WHERE id = 'org_wh_1';
SELECT id, role, deleted_at FROM clerk.organization_members WHERE id LIKE 'orgmem_wh_%' ORDER BY id;

-- other event types are acknowledged and recorded, not applied
SELECT pg_temp.deliver('msg_wh_21', 'sms.created', '{"id": "sms_wh_1", "object": "sms_message"}');
SELECT pg_temp.deliver('msg_wh_22', 'email.created', '{"object": "email"}');

-- a signed body that is not a usable event
SELECT pg_temp.deliver('msg_wh_23', 'user.created', '{"object": "user", "first_name": "No id"}');
SELECT pg_temp.deliver('msg_wh_24', 'user.updated', '"just a string"');
SELECT pg_temp.try(d.body, d.svix_id, d.ts, pg_temp.svix_sign(current_setting('regress.webhook_secret'), d.svix_id, 1700000000, d.body))
FROM (SELECT '{"type": "user.created", "data": ' AS body, 'msg_wh_25' AS svix_id, '1700000000' AS ts) d;
SELECT pg_temp.try(d.body, d.svix_id, d.ts, pg_temp.svix_sign(current_setting('regress.webhook_secret'), d.svix_id, 1700000000, d.body))
FROM (SELECT '{"data": {"id": "user_wh_9"}}' AS body, 'msg_wh_26' AS svix_id, '1700000000' AS ts) d;
SELECT pg_temp.try(d.body, d.svix_id, d.ts, pg_temp.svix_sign(current_setting('regress.webhook_secret'), d.svix_id, 1700000000, d.body))
FROM (SELECT '[1, 2]' AS body, 'msg_wh_27' AS svix_id, '1700000000' AS ts) d;
-- in full, with the delivery it came from
SELECT clerk_handle_webhook(d.body, d.svix_id, d.ts, pg_temp.svix_sign(current_setting('regress.webhook_secret'), d.svix_id, 1700000000, d.body))
FROM (SELECT '{"type": "user.created", "data": ' AS body, 'msg_wh_25' AS svix_id, '1700000000' AS ts) d;

-- what was recorded: each delivery once, with what it did
SELECT svix_id, event_type, object_id, result, outcome
FROM clerk.webhook_deliveries WHERE svix_id LIKE 'msg_wh_%' ORDER BY svix_id;

-- every applied event is in the audit log (ignored ones and duplicates are not)
SELECT action, entity_type, entity_id, organization_id, run_id, details
FROM clerk.audit_logs WHERE action LIKE 'webhook.%' ORDER BY id;

-- ==== Pruning by clerk_sync.log_retention ====
INSERT INTO clerk.webhook_deliveries (svix_id, event_type, received_at, result)
VALUES ('msg_wh_old', 'user.updated', now() - interval '2 hours', 'user.updated');
SET clerk_sync.log_retention = 0;            -- keep forever
SELECT pg_temp.deliver('msg_wh_30', 'sms.created', '{"id": "sms_wh_2", "object": "sms_message"}');
SELECT count(*) AS old_kept FROM clerk.webhook_deliveries WHERE svix_id = 'msg_wh_old';
SET clerk_sync.log_retention = '1h';
SELECT pg_temp.deliver('msg_wh_31', 'sms.created', '{"id": "sms_wh_3", "object": "sms_message"}');
SELECT count(*) AS old_kept FROM clerk.webhook_deliveries WHERE svix_id = 'msg_wh_old';
SELECT count(*) AS recent_kept FROM clerk.webhook_deliveries WHERE svix_id LIKE 'msg_wh_%';
RESET clerk_sync.log_retention;

-- ==== Permissions ====
-- A role granted only clerk_handle_webhook() applies events without any
-- table privilege; it cannot see or change the secret or the clock.
CREATE ROLE regress_clerk_webhook;
GRANT EXECUTE ON FUNCTION clerk_handle_webhook(text, text, text, text) TO regress_clerk_webhook;
SELECT body, svix_id, ts, sig FROM pg_temp.delivery('msg_wh_40', 'user.created',
    pg_temp.user_obj('user_wh_6', 'ByRole', 1699990001000)) \gset
SET ROLE regress_clerk_webhook;
SELECT clerk_handle_webhook(:'body', :'svix_id', :'ts', :'sig');
SELECT clerk_handle_webhook(:'body', :'svix_id', :'ts', :'sig');
SELECT count(*) FROM clerk.users;
SHOW clerk_sync.webhook_secret;
SET clerk_sync.webhook_now = 0;
SELECT clerk_set_webhook_secret('whsec_dGVzdF9mYWtlX3dlYmhvb2tfc2VjcmV0X3JlZ3Jlc3M=');
RESET ROLE;
SELECT first_name FROM clerk.users WHERE id = 'user_wh_6';
SELECT actor, action, entity_id FROM clerk.audit_logs WHERE details ->> 'svix_id' = 'msg_wh_40';
-- the settings are hidden from SHOW ALL and pg_settings listings
SELECT count(*) FROM pg_settings WHERE name IN ('clerk_sync.webhook_secret', 'clerk_sync.webhook_now');
REVOKE EXECUTE ON FUNCTION clerk_handle_webhook(text, text, text, text) FROM regress_clerk_webhook;
DROP ROLE regress_clerk_webhook;

-- nothing of the extension is usable by PUBLIC
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p WHERE p.proname IN ('clerk_handle_webhook', 'clerk_set_webhook_secret') ORDER BY 1;
SELECT has_table_privilege('public', 'clerk.webhook_deliveries', 'SELECT') AS public_select;
