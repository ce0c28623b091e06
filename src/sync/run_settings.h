/*
 * run_settings.h
 *		The settings a run takes from its session, its key, and the HTTP client they make.
 */
#ifndef CLERK_RUN_SETTINGS_H
#define CLERK_RUN_SETTINGS_H

#include "base/base.h"
#include "clerk/http.h"

/* Settings a run takes from the session that started it. */
typedef struct ClerkRunSettings
{
	char		api_url[CLERK_MAX_URL_LEN];
	char		proxy[CLERK_MAX_URL_LEN];	/* "" for none */
	char		secret_key[CLERK_MAX_KEY_LEN];	/* zeroed by the worker once read */
	int			page_size;
	int			request_timeout;
	int			max_retries;
	int			retry_backoff;
	int			rate_limit;
	int			concurrency;
	int			log_retention;
	int			credential_audit_retention;
	int			incremental_overlap;
	double		max_delete_fraction;
	int			entities;		/* clerk_sync.entities: the optional entities listed */
} ClerkRunSettings;

/* This session's settings (clerk_sync.*); the secret key is left empty (zeros). */
extern void clerk_run_settings_capture(ClerkRunSettings *s);

/*
 * A client, whose curl resources live until mcxt is reset or deleted, for
 * the API of settings s and the secret key `key`.  The key is wiped once
 * the client holds its own copy, and also when the client cannot be made.
 */
extern ClerkHttpClient *clerk_run_http_client(MemoryContext mcxt, const ClerkRunSettings *s,
											  char *key);

/*
 * The Clerk secret key for work against the API (a run, a sessions
 * backfill), read without keeping the locks that reading it takes, after
 * checking that the installed SQL serves a sync; an error if there is
 * none, or it is too long.  The caller wipes it.
 */
extern char *clerk_run_key(void);

#endif							/* CLERK_RUN_SETTINGS_H */
