/*
 * transaction.c
 *		A page of the write path in a transaction of its own, as the writer.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "base/extension.h"
#include "store/role.h"
#include "store/transaction.h"

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
	PopActiveSnapshot();

	/*
	 * Commit as the writer: a deferred trigger that fires at commit runs
	 * with the writer's rights, never with those of the role that started
	 * the run.
	 */
	CommitTransactionCommand();
	clerk_restore_user_after_commit(&saved);
	/* the commit leaves CurrentMemoryContext at TopMemoryContext */
	MemoryContextSwitchTo(caller);
}
