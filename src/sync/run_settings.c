/*
 * run_settings.c
 *		The settings a run takes from its session, its key, and the HTTP client they make.
 */
#include "postgres.h"

#include "base/extension.h"
#include "base/settings.h"
#include "base/subtransaction.h"
#include "sync/run_settings.h"
#include "vault/secrets.h"

void
clerk_run_settings_capture(ClerkRunSettings *s)
{
	memset(s, 0, sizeof(*s));
	strlcpy(s->api_url, clerk_sync_api_url, sizeof(s->api_url));
	strlcpy(s->proxy, clerk_sync_proxy ? clerk_sync_proxy : "", sizeof(s->proxy));
	s->page_size = clerk_sync_page_size;
	s->request_timeout = clerk_sync_request_timeout;
	s->max_retries = clerk_sync_max_retries;
	s->retry_backoff = clerk_sync_retry_backoff;
	s->rate_limit = clerk_sync_rate_limit;
	s->concurrency = clerk_sync_concurrency;
	s->log_retention = clerk_sync_log_retention;
	s->credential_audit_retention = clerk_sync_credential_audit_retention;
	s->incremental_overlap = clerk_sync_incremental_overlap;
	s->max_delete_fraction = clerk_sync_max_delete_fraction;
	s->entities = clerk_sync_entities;
}

ClerkHttpClient *
clerk_run_http_client(MemoryContext mcxt, const ClerkRunSettings *s, char *key)
{
	ClerkHttpConfig config = {
		.api_url = s->api_url,
		.proxy = s->proxy,
		.secret_key = key,
		.timeout_ms = s->request_timeout,
		.max_retries = s->max_retries,
		.retry_backoff_ms = s->retry_backoff,
		.rate_limit = s->rate_limit,
		.concurrency = s->concurrency,
	};
	ClerkHttpClient *volatile client = NULL;

	PG_TRY();
	{
		client = clerk_http_create(mcxt, &config);
	}
	PG_FINALLY();
	{
		explicit_bzero(key, strlen(key));
	}
	PG_END_TRY();
	return client;
}

/*
 * The key for a run, and the check that the SQL serves a run, in a
 * subtransaction that is rolled back: the locks they take (on the vault's
 * table, on pg_extension) go with it, so the caller waits for its run
 * holding nothing that the worker, or DDL on the extension, could need.
 */
static void
read_key(void *arg)
{
	char	  **key = (char **) arg;
	char	   *k;

	clerk_require_sql_version(CLERK_SQL_FOR_SYNC);
	k = clerk_resolve_secret(CLERK_SECRET_API_KEY);
	if (k != NULL)
	{
		*key = pstrdup(k);
		explicit_bzero(k, strlen(k));
	}
}

char *
clerk_run_key(void)
{
	char	   *key = NULL;

	clerk_without_locks(read_key, &key);
	if (key == NULL && clerk_secret_removed_setting_set(CLERK_SECRET_API_KEY))
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg("no Clerk secret key is configured"),
				 errhint("clerk_sync.secret_key is no longer read: name a file with clerk_sync.secret_key_file, call clerk_set_secret_key(), or set CLERK_SECRET_KEY in the server's environment.")));
	if (key == NULL)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg("no Clerk secret key is configured"),
				 errhint("Name a file with clerk_sync.secret_key_file, call clerk_set_secret_key(), or set CLERK_SECRET_KEY in the server's environment.")));
	if (strlen(key) >= CLERK_MAX_KEY_LEN)
	{
		explicit_bzero(key, strlen(key));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the Clerk secret key is too long"),
				 errdetail("A Clerk secret key must be shorter than %d bytes.", CLERK_MAX_KEY_LEN)));
	}
	return key;
}
