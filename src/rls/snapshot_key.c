/*
 * snapshot_key.c
 *		Whether a snapshot sees what an earlier one saw: the key of the row-level security helpers' caches.
 */
#include "postgres.h"

#include "storage/proc.h"
#include "utils/snapmgr.h"

#include "base/compat.h"
#include "rls/snapshot_key.h"

void
clerk_snapshot_remember(ClerkSnapshotKey *k)
{
	Snapshot	s;

	memset(k, 0, sizeof(*k));
	k->lxid = InvalidLocalTransactionId;
	if (!ActiveSnapshotSet())
		return;
	s = GetActiveSnapshot();
	k->lxid = CLERK_MY_LXID;
	k->curcid = s->curcid;
	k->xmin = s->xmin;
	k->xmax = s->xmax;
	k->xcnt = s->xcnt;
	k->subxcnt = s->subxcnt;
	k->suboverflowed = s->suboverflowed;
	k->takenDuringRecovery = s->takenDuringRecovery;
	k->xip = palloc(Max(s->xcnt, 1) * sizeof(TransactionId));
	memcpy(k->xip, s->xip, s->xcnt * sizeof(TransactionId));
	k->subxip = palloc(Max(s->subxcnt, 1) * sizeof(TransactionId));
	memcpy(k->subxip, s->subxip, Max(s->subxcnt, 0) * sizeof(TransactionId));
}

bool
clerk_snapshot_same(const ClerkSnapshotKey *k)
{
	Snapshot	s;

	if (k->lxid == InvalidLocalTransactionId || !ActiveSnapshotSet())
		return false;
	s = GetActiveSnapshot();
	return k->lxid == CLERK_MY_LXID && k->curcid == s->curcid &&
		k->xmin == s->xmin && k->xmax == s->xmax &&
		k->xcnt == s->xcnt && k->subxcnt == s->subxcnt &&
		k->suboverflowed == s->suboverflowed &&
		k->takenDuringRecovery == s->takenDuringRecovery &&
		memcmp(k->xip, s->xip, s->xcnt * sizeof(TransactionId)) == 0 &&
		memcmp(k->subxip, s->subxip, Max(s->subxcnt, 0) * sizeof(TransactionId)) == 0;
}
