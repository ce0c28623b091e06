/*
 * clerk_sync.c
 *		Module entry point: _PG_init, which sets up each part; nothing includes this file.
 *
 * The work lives in src/, one folder per subsystem and one job per file;
 * doc/architecture.md lists the folders in the order data flows through
 * them, and which may call which.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "base/settings.h"
#include "clerk/rate_budget.h"
#include "changes/sender_slot.h"
#include "runs/change_workers.h"
#include "runs/ddl.h"
#include "sync/run_slot.h"
#include "vault/keyring.h"
#include "vault/seal.h"
#include "vault/secrets.h"
#include "webhooks/webhook.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));

	/*
	 * libsodium, its setting and the root key ring in the postmaster, first:
	 * the secrets below are kept in libsodium's locked memory.
	 */
	clerk_keyring_init();
	clerk_seal_init();

	clerk_settings_init();

	/* the secrets: where they come from (never a setting's value) */
	clerk_secrets_init();

	/* webhooks: the body limit and the test clock */
	clerk_webhook_init();

	MarkGUCPrefixReserved("clerk_sync");

	if (clerk_sync_preloaded)
	{
		clerk_run_slots_init();
		clerk_rate_budget_init();
		clerk_sender_slots_init();
		clerk_change_workers_init();
		clerk_ddl_init();
	}
}
