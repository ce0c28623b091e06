/*
 * clerk_sync.h
 *		Settings, SQLSTATEs and the preload check, shared by every part of
 *		clerk_sync.
 */
#ifndef CLERK_SYNC_H
#define CLERK_SYNC_H

#include "postgres.h"

#include "extension.h"

/* Settings (clerk_sync.*), defined in clerk_sync.c */
extern char *clerk_sync_api_url;
extern char *clerk_sync_proxy;
extern int	clerk_sync_page_size;
extern int	clerk_sync_request_timeout;
extern int	clerk_sync_max_retries;
extern int	clerk_sync_retry_backoff;
extern int	clerk_sync_rate_limit;
extern int	clerk_sync_concurrency;
extern int	clerk_sync_log_retention;
extern int	clerk_sync_session_retention;
extern int	clerk_sync_credential_audit_retention;
extern int	clerk_sync_worker_start_timeout;
extern int	clerk_sync_incremental_overlap;
extern double clerk_sync_max_delete_fraction;
extern int	clerk_sync_entities;	/* clerk_sync.entities: CLERK_ENTITY_BIT()s */

/* true when the library was loaded through shared_preload_libraries */
extern bool clerk_sync_preloaded;

/*
 * SQLSTATEs by cause, so that monitoring (and a pg_cron job's status) can
 * tell a rejected key from an unreachable API from a broken response.
 */
#define CLERK_ERRCODE_KEY_REJECTED	ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION /* 28000 */
#define CLERK_ERRCODE_NO_KEY		ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE	/* 55000 */
#define CLERK_ERRCODE_UNREACHABLE	ERRCODE_CONNECTION_FAILURE	/* 08006 */
#define CLERK_ERRCODE_BAD_RESPONSE	ERRCODE_PROTOCOL_VIOLATION	/* 08P01 */
#define CLERK_ERRCODE_API_ERROR		ERRCODE_EXTERNAL_ROUTINE_EXCEPTION	/* 38000 */

/* the Clerk Backend API version every request pins */
#define CLERK_API_VERSION "2026-05-12"
#define CLERK_USER_AGENT "clerk_sync/" CLERK_LIBRARY_VERSION

/* Longest values copied into shared memory */
#define CLERK_MAX_URL_LEN 1024
#define CLERK_MAX_KEY_LEN 512

/* Error unless the library was preloaded (shared memory and workers). */
extern void clerk_require_preload(const char *what);

#endif							/* CLERK_SYNC_H */
