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
