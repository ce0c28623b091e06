/*
 * webhook.h
 *		Clerk webhooks: Svix signature verification and event dispatch.
 */
#ifndef CLERK_WEBHOOK_H
#define CLERK_WEBHOOK_H

#include "utils/errcodes.h"

/*
 * SQLSTATEs of clerk_handle_webhook(), one per kind of failure, so that the
 * HTTP endpoint in front of it can answer a bad request differently from a
 * misconfigured database (see doc/webhooks.md).
 */
#define CLERK_ERRCODE_WEBHOOK_NO_SECRET		ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE	/* 55000 */
#define CLERK_ERRCODE_WEBHOOK_MISSING		ERRCODE_NULL_VALUE_NOT_ALLOWED	/* 22004 */
#define CLERK_ERRCODE_WEBHOOK_BAD_TIMESTAMP	ERRCODE_INVALID_DATETIME_FORMAT /* 22007 */
#define CLERK_ERRCODE_WEBHOOK_TOLERANCE		ERRCODE_DATETIME_FIELD_OVERFLOW /* 22008 */
#define CLERK_ERRCODE_WEBHOOK_BAD_SIGNATURE	ERRCODE_INVALID_PASSWORD	/* 28P01 */
#define CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD	ERRCODE_INVALID_TEXT_REPRESENTATION /* 22P02 */

/* How far the svix-timestamp may be from the clock, either way (Svix's own rule). */
#define CLERK_WEBHOOK_TOLERANCE_SECONDS 300

/*
 * Define clerk_sync.webhook_secret and clerk_sync.webhook_now.  Called from
 * _PG_init, before the clerk_sync prefix is reserved.
 */
extern void clerk_webhook_init(void);

#endif							/* CLERK_WEBHOOK_H */
