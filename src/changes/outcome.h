/*
 * outcome.h
 *		What Clerk's answer to a change means (sent, to retry, failed), and its record with the object Clerk answered.
 */
#ifndef CLERK_OUTCOME_H
#define CLERK_OUTCOME_H

#include "clerk/clerk_writes.h"
#include "clerk/http.h"

/* A change taken to be sent (in its own memory context). */
typedef struct Change
{
	int64		id;
	const ClerkWriteOp *op;
	char	   *object_id;
	char	   *organization_id;
	char	   *object_key;
	Jsonb	   *args;
	char	   *body;			/* args as text */
	int			attempts;		/* including this one */
	bool		in_doubt;		/* an earlier attempt's answer was lost */
	bool		looking_up;		/* the request in flight is the lookup of a create */
	int			req;			/* the request in flight */
	MemoryContext cxt;
} Change;

typedef enum Outcome
{
	OUT_SENT,					/* Clerk took it: the answer (if any) is stored */
	OUT_RETRY,					/* try again at retry_ms from now */
	OUT_FAILED					/* Clerk refused it, or it kept failing */
} Outcome;

typedef struct Finish
{
	Change	   *c;
	Outcome		outcome;
	Jsonb	   *object;			/* with OUT_SENT: Clerk's object, to store */
	bool		deleted;		/* ... as a deletion */
	long		http_status;
	const char *error_code;
	const char *error_message;
	int64		retry_ms;
	bool		in_doubt;
	bool		uncounted;		/* the attempt does not count (429, a refused key) */
	bool		key_refused;	/* Clerk refused the key (401): read it again before the next request */
	const char *note;			/* with OUT_SENT: how it was known */
} Finish;

/*
 * What the finished request r means for change c (retry_backoff: the first
 * delay of a retry, ms): false when it was the look-up of a create that
 * Clerk did not make (the create is to be sent now), else true with *f
 * filled.  Inside a transaction (an answer is parsed), SPI not connected.
 */
extern bool clerk_outcome_judge(Change *c, ClerkHttpResult *r, int retry_backoff, Finish *f);

/*
 * Record the outcome in clerk.changes and, for a change Clerk took, store
 * the object it answered with through the one write path (a store that
 * fails is noted, not a failure: Clerk took the change).  As the writer.
 */
extern void clerk_outcome_record(Finish *f);

#endif							/* CLERK_OUTCOME_H */
