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
