/*
 * queue.h
 *		A change to Clerk queued in the caller's transaction: its checks, its body, its row, and the wake-up at commit.
 */
#ifndef CLERK_QUEUE_H
#define CLERK_QUEUE_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "clerk/clerk_writes.h"
#include "store/role.h"

/* One change being queued, from change_begin to change_queue. */
typedef struct ClerkChange
{
	const ClerkWriteOp *op;
	const char *queued_by;
	ClerkSavedUser saved;
	StringInfoData body;		/* the request body, a JSON object being built */
	int			nfields;
} ClerkChange;

/*
 * Start queuing operation `name`: refused on a standby or in a read-only
 * transaction (25006) and without the preloaded library; afterwards the
 * caller runs as the writer, connected to SPI, to check its arguments.
 */
extern void clerk_change_begin(ClerkChange *c, const char *name);

/* Add a member to the body: a text (as a JSON string), a jsonb value, a number, a boolean. */
extern void clerk_change_text(ClerkChange *c, const char *key, const char *value);
extern void clerk_change_jsonb(ClerkChange *c, const char *key, Jsonb *value);
extern void clerk_change_int(ClerkChange *c, const char *key, int value);
extern void clerk_change_bool(ClerkChange *c, const char *key, bool value);

/*
 * Queue it: wait for the earlier transactions that queued a change of the
 * same object (object_key) to end, so that ids follow commit order per
 * object; insert the row; back to the caller's role.  After the caller's
 * transaction commits, the write-back worker is woken.  Returns the id.
 */
extern int64 clerk_change_queue(ClerkChange *c, const char *object_id,
								const char *organization_id, const char *object_key);

/* The first row's first column of a query with text arguments (as the writer, SPI connected), or NULL. */
extern Datum clerk_change_query(const char *sql, int nargs, const char **args, bool *found);

/* Wake the write-back worker after this transaction commits (a change made pending again). */
extern void clerk_change_wake_at_commit(void);

#endif							/* CLERK_QUEUE_H */
