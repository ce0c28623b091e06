/*
 * run_settings.c
 *		The settings a run takes from its session, and the HTTP client they make.
 */
#include "postgres.h"

#include "run_settings.h"

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
