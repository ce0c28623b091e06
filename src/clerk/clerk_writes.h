/*
 * clerk_writes.h
 *		The write endpoints of the Clerk Backend API: each operation's method, path, answer, and how a lost create is found.
 */
#ifndef CLERK_WRITES_H
#define CLERK_WRITES_H

#include "utils/jsonb.h"

#include "base/entity.h"
#include "clerk/parse.h"

/* What Clerk's answer to a write is. */
typedef enum ClerkWriteAnswer
{
	CLERK_WRITE_OBJECT,			/* the object as it is now: stored */
	CLERK_WRITE_CREATED,		/* a new object: stored; a lost answer may have created it */
	CLERK_WRITE_GONE			/* the object was deleted (or revoked as a deletion): soft-deleted */
} ClerkWriteAnswer;

typedef struct ClerkWriteOp
{
	const char *name;			/* the operation, as clerk.changes.operation says it */
	const char *object_type;	/* user, organization, organization_membership, ... */
	const char *method;			/* POST, PATCH or DELETE */
	const char *path;			/* {id} the object, {org} its organization */
	ClerkEntity entity;			/* the answer's entity */
	ClerkWriteAnswer answer;
	bool		object_limited; /* Clerk allows CLERK_OBJECT_WRITES per object per 10 s */
} ClerkWriteOp;

/* Clerk's limit on some writes: this many per object in any 10 s (system limits) */
#define CLERK_OBJECT_WRITES 10

/* The operation called `name`, or NULL. */
extern const ClerkWriteOp *clerk_write_op(const char *name);

/* The path of a write (ids checked with clerk_plain_id by the caller). */
extern char *clerk_write_path(const ClerkWriteOp *op, const char *id, const char *organization_id);

/*
 * For a create whose answer was lost: the GET that finds the object if
 * Clerk made it (from the change's organization and arguments), and the
 * object among that GET's answer (NULL when it is not there).
 */
extern char *clerk_write_lookup_path(const ClerkWriteOp *op, const char *organization_id,
									 JsonbContainer *args);
extern Jsonb *clerk_write_lookup_find(const ClerkWriteOp *op, const ClerkParsed *answer,
									  JsonbContainer *args);

#endif							/* CLERK_WRITES_H */
