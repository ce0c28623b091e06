/*
 * base.h
 *		Constants every layer of clerk_sync uses: its version, SQLSTATEs by cause, the API version and length limits.
 */
#ifndef CLERK_BASE_H
#define CLERK_BASE_H

/* The version of this library, and of the newest SQL it ships. */
#define CLERK_LIBRARY_VERSION "1.1"

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

#endif							/* CLERK_BASE_H */
