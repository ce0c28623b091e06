/*
 * settings.h
 *		The settings of syncs and of the HTTP client (clerk_sync.*), and whether the library was preloaded.
 */
#ifndef CLERK_SETTINGS_H
#define CLERK_SETTINGS_H

#include "base/base.h"

/* Settings (clerk_sync.*), defined in settings.c */
extern char *clerk_sync_api_url;
extern char *clerk_sync_proxy;
extern int	clerk_sync_page_size;
extern int	clerk_sync_request_timeout;
extern int	clerk_sync_max_retries;
extern int	clerk_sync_retry_backoff;
extern int	clerk_sync_rate_limit;
extern int	clerk_sync_concurrency;
extern int	clerk_sync_log_retention;
extern int	clerk_sync_change_retention;
extern int	clerk_sync_session_retention;
extern int	clerk_sync_credential_audit_retention;
extern int	clerk_sync_worker_start_timeout;
extern int	clerk_sync_incremental_overlap;
extern double clerk_sync_max_delete_fraction;
extern int	clerk_sync_entities;	/* clerk_sync.entities: CLERK_ENTITY_BIT()s */

/* true when the library was loaded through shared_preload_libraries */
extern bool clerk_sync_preloaded;

/* Define the settings above; from _PG_init. */
extern void clerk_settings_init(void);

/* Error unless the library was preloaded (shared memory and workers). */
extern void clerk_require_preload(const char *what);

#endif							/* CLERK_SETTINGS_H */
