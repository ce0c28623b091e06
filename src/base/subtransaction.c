/*
 * subtransaction.c
 *		Work in a subtransaction of its own (cancel, shutdown and out-of-memory are never swallowed).
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "base/subtransaction.h"

/*
 * fn(arg) in a subtransaction that is committed (keep) or rolled back; the
 * error, if any, as clerk_try() returns it.
 */
static ErrorData *
in_subtransaction(void (*fn) (void *arg), void *arg, bool keep)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

ErrorData *
clerk_try(void (*fn) (void *arg), void *arg)
{
	return in_subtransaction(fn, arg, true);
}

void
clerk_without_locks(void (*fn) (void *arg), void *arg)
{
	ErrorData  *edata = in_subtransaction(fn, arg, false);

	if (edata != NULL)
		ReThrowError(edata);
}
