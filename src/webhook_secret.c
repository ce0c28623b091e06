/*
 * webhook_secret.c
 *		The webhook signing secret kept encrypted by the credentials vault.
 *
 * webhook.c calls these through weak references, so the module also links
 * without this file; with it, clerk_set_webhook_secret() stores the secret
 * and clerk_handle_webhook() prefers the stored secret over the
 * clerk_sync.webhook_secret setting.
 */
#include "postgres.h"

#include "vault.h"
#include "webhook.h"

#define WEBHOOK_SECRET_NAME "webhook_secret"

char *
clerk_webhook_stored_secret(void)
{
	return clerk_vault_get_named_secret(WEBHOOK_SECRET_NAME);
}

void
clerk_webhook_store_secret(const char *secret)
{
	clerk_vault_set_named_secret(WEBHOOK_SECRET_NAME, secret);
}
