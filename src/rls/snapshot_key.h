/*
 * snapshot_key.h
 *		Whether a snapshot sees what an earlier one saw: the key of the row-level security helpers' caches.
 */
#ifndef CLERK_SNAPSHOT_KEY_H
#define CLERK_SNAPSHOT_KEY_H

#include "access/transam.h"

/*
 * Enough of a snapshot to tell whether a later one sees the same rows: the
 * same transaction and command, and the same transactions in progress.
 */
typedef struct ClerkSnapshotKey
{
	LocalTransactionId lxid;	/* InvalidLocalTransactionId: none remembered */
	CommandId	curcid;
	TransactionId xmin;
	TransactionId xmax;
	uint32		xcnt;
	int32		subxcnt;
	bool		suboverflowed;
	bool		takenDuringRecovery;
	TransactionId *xip;			/* in the memory current when remembered */
	TransactionId *subxip;
} ClerkSnapshotKey;

/* Remember the active snapshot (none: a key that matches nothing). */
extern void clerk_snapshot_remember(ClerkSnapshotKey *k);

/* Whether the active snapshot is the one k remembers. */
extern bool clerk_snapshot_same(const ClerkSnapshotKey *k);

#endif							/* CLERK_SNAPSHOT_KEY_H */
