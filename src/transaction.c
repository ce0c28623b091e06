/*
 * transaction.c
 *		Run a piece of a sync in a transaction of its own, as the writer.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/snapmgr.h"

#include "clerk_sync.h"
#include "extension.h"
#include "transaction.h"

void
clerk_in_transaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	ClerkSavedUser saved;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	clerk_become_writer(&saved, CLERK_SQL_FOR_SYNC);
	fn(arg);
	clerk_restore_user(&saved);
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* the commit leaves CurrentMemoryContext at TopMemoryContext */
	MemoryContextSwitchTo(caller);
}
