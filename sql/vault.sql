-- The credentials vault: store, read, list, deactivate and rotate encrypted
-- API credentials, and store the Clerk secret key.  The server runs with
-- one random key in CREDENTIALS_ENCRYPTION_KEY, so nothing printed here may
-- depend on the key: no ciphertext, and no key id in error details (those
-- statements run with VERBOSITY terse).  Restarts, other keys and the
-- server log are covered by t/030_vault.pl.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS clerk_sync;
RESET client_min_messages;

-- Audit rows written before this test are not its business.
SELECT coalesce(max(id), 0) AS audit_start FROM clerk.audit_logs \gset

INSERT INTO clerk.organizations (id, name, raw, deleted_at) VALUES
    ('org_vault_a', 'Vault A', '{}', NULL),
    ('org_vault_b', 'Vault B', '{}', NULL),
    ('org_vault_gone', 'Vault Gone', '{}', '2024-01-01 00:00:00+00');

-- Round trips.  Cliniko needs api_key and region.
SELECT clerk_store_credentials('org_vault_a', 'cliniko',
    '{"api_key": "cliniko_test_fake_aaaa-au2", "region": "au2"}') > 0 AS stored;
SELECT clerk_get_credentials('org_vault_a', 'cliniko');
-- Chatwoot needs api_token and account_id; base_url defaults to the cloud.
SELECT clerk_store_credentials('org_vault_a', 'chatwoot',
    '{"api_token": "chatwoot_test_fake_tttt", "account_id": 7}') > 0 AS stored;
SELECT clerk_get_credentials('org_vault_a', 'chatwoot');
SELECT clerk_store_credentials('org_vault_b', 'chatwoot',
    '{"api_token": "chatwoot_test_fake_uuuu", "account_id": "42", "base_url": "https://chat.example.test"}') > 0 AS stored;
SELECT clerk_get_credentials('org_vault_b', 'chatwoot');
SELECT clerk_store_credentials('org_vault_b', 'cliniko',
    '{"api_key": "cliniko_test_fake_bbbb-uk1", "region": "uk1"}') > 0 AS stored;

-- Nothing stored in the clear: format 1, and no plaintext bytes.
SELECT organization_id, service_name, is_active, key_id > 0 AS has_key_id,
       get_byte(credentials_encrypted, 0) AS format,
       position(convert_to('_test_fake_', 'UTF8') in credentials_encrypted) AS plaintext_at,
       created_by = current_user AS created_by_me
  FROM clerk.api_credentials WHERE organization_id LIKE 'org_vault_%'
 ORDER BY organization_id, service_name;
SELECT count(*) AS plaintext_columns
  FROM information_schema.columns
 WHERE table_schema = 'clerk' AND table_name IN ('api_credentials', 'secrets')
   AND data_type NOT IN ('bigint', 'integer', 'boolean', 'bytea', 'timestamp with time zone', 'text');

-- Each service's fields are checked; nothing is stored when one is wrong.
SELECT count(*) AS rows_before FROM clerk.api_credentials WHERE organization_id LIKE 'org_vault_%';
SELECT clerk_store_credentials('org_vault_a', 'stripe', '{"api_key": "stripe_test_fake"}');
SELECT clerk_store_credentials('org_vault_a', 'Cliniko', '{"api_key": "cliniko_test_fake", "region": "au1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"region": "au1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake", "region": "au1", "extra": 1}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake", "region": "xx9"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake", "region": "AU1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "", "region": "au1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": 12345, "region": "au1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko test fake", "region": "au1"}');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', jsonb_build_object('api_key', repeat('x', 1025), 'region', 'au1'));
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '["cliniko_test_fake", "au1"]');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '"cliniko_test_fake"');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake"}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 0}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": -3}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 1.5}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": "12a"}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 1, "base_url": "ftp://chat.example.test"}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 1, "base_url": "https://user:pw@chat.example.test"}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 1, "base_url": "https://"}');
SELECT clerk_store_credentials('org_vault_a', 'chatwoot', '{"api_token": "chatwoot_test_fake", "account_id": 1, "api_key": "x"}');
-- Only organizations Clerk knows, and not deleted ones.
SELECT clerk_store_credentials('org_vault_nowhere', 'cliniko', '{"api_key": "cliniko_test_fake", "region": "au1"}');
SELECT clerk_store_credentials('org_vault_gone', 'cliniko', '{"api_key": "cliniko_test_fake", "region": "au1"}');
SELECT count(*) AS rows_after FROM clerk.api_credentials WHERE organization_id LIKE 'org_vault_%';

-- Storing again deactivates the active row and adds a new one.
SELECT clerk_store_credentials('org_vault_a', 'cliniko',
    '{"api_key": "cliniko_test_fake_cccc-au3", "region": "au3"}') > 0 AS stored;
SELECT clerk_get_credentials('org_vault_a', 'cliniko');
SELECT organization_id, service_name, is_active, key_id > 0 AS has_key_id,
       created_by = current_user AS created_by_me,
       updated_at >= created_at AS updated_after_created
  FROM clerk_list_credentials()
 WHERE organization_id LIKE 'org_vault_%'
 ORDER BY organization_id, service_name, id;
-- The list shows no secret and no ciphertext.
SELECT pg_get_function_result('clerk_list_credentials()'::regprocedure) AS list_result;

-- Deactivating: true once, then false; reads then give NULL.
SELECT clerk_deactivate_credentials('org_vault_b', 'chatwoot') AS deactivated;
SELECT clerk_deactivate_credentials('org_vault_b', 'chatwoot') AS deactivated_again;
SELECT clerk_get_credentials('org_vault_b', 'chatwoot') IS NULL AS nothing_active;
SELECT clerk_get_credentials('org_vault_nowhere', 'cliniko') IS NULL AS nothing_stored;
SELECT clerk_deactivate_credentials('org_vault_b', 'stripe');

-- Tampering: one altered byte anywhere, a value copied onto another
-- organization's or service's row, or a changed key id all fail to decrypt
-- with an error, never with garbage.
CREATE TEMP TABLE saved AS
    SELECT id, credentials_encrypted, key_id FROM clerk.api_credentials
     WHERE organization_id LIKE 'org_vault_%';
\set VERBOSITY terse
UPDATE clerk.api_credentials
   SET credentials_encrypted = set_byte(credentials_encrypted, length(credentials_encrypted) - 1,
                                        get_byte(credentials_encrypted, length(credentials_encrypted) - 1) # 1)
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');
UPDATE clerk.api_credentials c SET credentials_encrypted = s.credentials_encrypted
  FROM saved s WHERE s.id = c.id;
UPDATE clerk.api_credentials
   SET credentials_encrypted = set_byte(credentials_encrypted, 10, get_byte(credentials_encrypted, 10) # 128)
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');
UPDATE clerk.api_credentials c SET credentials_encrypted = s.credentials_encrypted
  FROM saved s WHERE s.id = c.id;
UPDATE clerk.api_credentials
   SET credentials_encrypted = (SELECT credentials_encrypted FROM clerk.api_credentials
                                 WHERE organization_id = 'org_vault_a' AND service_name = 'cliniko' AND is_active)
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');
UPDATE clerk.api_credentials c SET credentials_encrypted = s.credentials_encrypted
  FROM saved s WHERE s.id = c.id;
UPDATE clerk.api_credentials
   SET credentials_encrypted = (SELECT credentials_encrypted FROM clerk.api_credentials
                                 WHERE organization_id = 'org_vault_a' AND service_name = 'chatwoot' AND is_active)
 WHERE organization_id = 'org_vault_a' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_a', 'cliniko');
UPDATE clerk.api_credentials c SET credentials_encrypted = s.credentials_encrypted
  FROM saved s WHERE s.id = c.id;
UPDATE clerk.api_credentials SET key_id = key_id + 1
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');
UPDATE clerk.api_credentials c SET key_id = s.key_id FROM saved s WHERE s.id = c.id;
UPDATE clerk.api_credentials SET credentials_encrypted = '\x00'
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');
UPDATE clerk.api_credentials c SET credentials_encrypted = s.credentials_encrypted
  FROM saved s WHERE s.id = c.id;
-- A tampered row stops a rotation, which then changes nothing.
UPDATE clerk.api_credentials SET key_id = key_id + 1
 WHERE organization_id = 'org_vault_b' AND service_name = 'cliniko' AND is_active;
SELECT clerk_rotate_encryption_key();
UPDATE clerk.api_credentials c SET key_id = s.key_id FROM saved s WHERE s.id = c.id;
\set VERBOSITY default
SELECT count(*) AS unchanged
  FROM clerk.api_credentials c JOIN saved s USING (id)
 WHERE c.credentials_encrypted = s.credentials_encrypted AND c.key_id = s.key_id;
SELECT clerk_get_credentials('org_vault_b', 'cliniko');

-- Rotation with one key: everything is already under the newest key id,
-- and everything stays readable.
SELECT clerk_rotate_encryption_key() AS reencrypted;
SELECT organization_id, service_name, clerk_get_credentials(organization_id, service_name) IS NOT NULL AS readable
  FROM clerk_list_credentials() WHERE is_active AND organization_id LIKE 'org_vault_%'
 ORDER BY 1, 2;

-- The Clerk secret key: stored encrypted, returned by nothing.
SELECT clerk_set_secret_key('sk_test_mock_regress_0000');
SELECT name, key_id > 0 AS has_key_id, get_byte(value_encrypted, 0) AS format,
       position(convert_to('sk_test_mock', 'UTF8') in value_encrypted) AS plaintext_at,
       set_by = current_user AS set_by_me
  FROM clerk.secrets;
SELECT clerk_set_secret_key('sk_test_mock_regress_1111');
SELECT count(*) AS secrets FROM clerk.secrets;
SELECT clerk_set_secret_key('sk_test mock');
SELECT clerk_set_secret_key(repeat('s', 600));
SELECT clerk_set_secret_key('');
SELECT count(*) AS secrets_after_clear FROM clerk.secrets;
SELECT clerk_set_secret_key('');

-- The audit trail: who did what to which organization and service, and
-- never a secret.
SELECT action, actor = current_user AS by_me, entity_type, organization_id,
       details ->> 'service' AS service, details ? 'replaced_id' AS replaced
  FROM clerk.audit_logs
 WHERE id > :audit_start
   AND (organization_id LIKE 'org_vault_%' OR action LIKE 'secret_key.%' OR action LIKE 'encryption_key.%')
 ORDER BY id;
SELECT count(*) AS audit_rows_with_secrets
  FROM clerk.audit_logs
 WHERE id > :audit_start
   AND (details::text ~ '_test_' OR entity_id ~ '_test_' OR organization_id ~ '_test_');

-- STRICT: NULL in gives NULL out, and nothing happens.
SELECT clerk_store_credentials(NULL, 'cliniko', '{}') IS NULL AS store_null,
       clerk_store_credentials('org_vault_a', 'cliniko', NULL) IS NULL AS store_null_credentials,
       clerk_get_credentials('org_vault_a', NULL) IS NULL AS get_null,
       clerk_deactivate_credentials(NULL, 'cliniko') IS NULL AS deactivate_null;
SELECT clerk_set_secret_key(NULL);
SELECT count(*) AS secrets FROM clerk.secrets;

-- Privileges: none for PUBLIC; a role granted clerk_get_credentials can read
-- and nothing more.  Nobody but superusers sees the key setting.
CREATE ROLE regress_vault_nobody;
CREATE ROLE regress_vault_reader;
GRANT EXECUTE ON FUNCTION clerk_get_credentials(text, text) TO regress_vault_reader;
SELECT p.oid::regprocedure AS function, has_function_privilege('regress_vault_nobody', p.oid, 'EXECUTE') AS nobody_can
  FROM pg_proc p
 WHERE p.proname IN ('clerk_store_credentials', 'clerk_get_credentials', 'clerk_list_credentials',
                     'clerk_deactivate_credentials', 'clerk_rotate_encryption_key', 'clerk_set_secret_key',
                     'clerk_digest', 'clerk_hmac')
 ORDER BY 1;
SELECT has_table_privilege('regress_vault_nobody', 'clerk.api_credentials', 'SELECT') AS nobody_reads_credentials,
       has_table_privilege('regress_vault_nobody', 'clerk.secrets', 'SELECT') AS nobody_reads_secrets,
       has_table_privilege('regress_vault_reader', 'clerk.api_credentials', 'SELECT') AS reader_reads_table;
SET ROLE regress_vault_nobody;
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake_dddd", "region": "au1"}');
SELECT clerk_get_credentials('org_vault_a', 'cliniko');
SELECT * FROM clerk_list_credentials();
SELECT clerk_deactivate_credentials('org_vault_a', 'cliniko');
SELECT clerk_rotate_encryption_key();
SELECT clerk_set_secret_key('sk_test_mock_regress_2222');
SHOW clerk_sync.encryption_key_command;
SELECT current_setting('clerk_sync.encryption_key_command');
SELECT count(*) AS visible_key_settings FROM pg_settings
 WHERE name IN ('clerk_sync.encryption_key_command', 'clerk_sync.secret_key');
RESET ROLE;
SET ROLE regress_vault_reader;
SELECT clerk_get_credentials('org_vault_a', 'cliniko');
SELECT clerk_store_credentials('org_vault_a', 'cliniko', '{"api_key": "cliniko_test_fake_eeee", "region": "au1"}');
SELECT * FROM clerk_list_credentials();
RESET ROLE;
SELECT action, organization_id FROM clerk.audit_logs
 WHERE id > :audit_start AND actor = 'regress_vault_reader' ORDER BY id;
-- Even superusers do not list the key setting among all settings.
SELECT count(*) AS listed_key_settings FROM pg_settings
 WHERE name IN ('clerk_sync.encryption_key_command', 'clerk_sync.secret_key');

-- Clean up what this test added.
REVOKE EXECUTE ON FUNCTION clerk_get_credentials(text, text) FROM regress_vault_reader;
DROP ROLE regress_vault_nobody;
DROP ROLE regress_vault_reader;
DELETE FROM clerk.audit_logs
 WHERE id > :audit_start
   AND (organization_id LIKE 'org_vault_%' OR action LIKE 'secret_key.%' OR action LIKE 'encryption_key.%');
DELETE FROM clerk.api_credentials WHERE organization_id LIKE 'org_vault_%';
DELETE FROM clerk.organizations WHERE id LIKE 'org_vault_%';
