/*
 * manage.c
 *		What a caller does with a queued change: wait for its outcome, cancel it, retry it.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "base/extension.h"
#include "changes/queue.h"
#include "store/role.h"

PG_FUNCTION_INFO_V1(clerk_change_wait);
PG_FUNCTION_INFO_V1(clerk_change_cancel);
PG_FUNCTION_INFO_V1(clerk_change_retry);

/* how often a waiting caller looks again */
#define WAIT_STEP_MS 50

/* The change's status, and whether this transaction queued it; false if there is none. */
static bool
change_status(int64 id, char **status, bool *ours)
{
	ClerkSavedUser saved;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		found;
	MemoryContext caller = CurrentMemoryContext;

	clerk_become_reader(&saved, CLERK_SQL_FOR_CHANGES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT status, xmin::text FROM clerk.changes WHERE id OPERATOR(pg_catalog.=) $1",
							  1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the change");
	found = SPI_processed > 0;
	if (found)
	{
		char	   *xmin = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		*status = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		*ours = TransactionIdIsCurrentTransactionId((TransactionId) strtoul(xmin, NULL, 10));
	}
	SPI_finish();
	clerk_restore_user(&saved);
	return found;
}

Datum
clerk_change_wait(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Interval   *timeout = PG_GETARG_INTERVAL_P(1);
	TimestampTz deadline;
	char	   *status = NULL;
	bool		ours = false;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot wait for a change in a %s transaction",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("The transaction's snapshot would never see the outcome."),
				 errhint("Wait in a READ COMMITTED transaction.")));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   (int64) (timeout->time / 1000) +
										   (int64) (timeout->day + timeout->month * 30) * 86400000);
	for (;;)
	{
		if (!change_status(id, &status, &ours))
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("there is no change %lld", (long long) id)));
		if (ours)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("change %lld was queued in this transaction", (long long) id),
					 errdetail("A change is sent only after its transaction commits."),
					 errhint("Commit first, then wait for it.")));
		if (strcmp(status, "pending") != 0 || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WAIT_STEP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

/* Run an UPDATE of one change as the writer; whether it changed the row. */
static bool
update_change(const char *sql, int64 id)
{
	ClerkSavedUser saved;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		done;

	if (RecoveryInProgress() || XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change clerk.changes in a read-only transaction")));
	clerk_become_writer(&saved, CLERK_SQL_FOR_CHANGES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update the change");
	done = SPI_processed > 0;
	SPI_finish();
	clerk_restore_user(&saved);
	return done;
}

Datum
clerk_change_cancel(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(update_change("UPDATE clerk.changes SET status = 'canceled', "
								 "finished_at = pg_catalog.clock_timestamp() "
								 "WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'pending'",
								 PG_GETARG_INT64(0)));
}

Datum
clerk_change_retry(PG_FUNCTION_ARGS)
{
	bool		done = update_change("UPDATE clerk.changes SET status = 'pending', attempts = 0, "
									 "next_attempt_at = pg_catalog.now(), finished_at = NULL, http_status = NULL, "
									 "error_code = NULL, error_message = NULL "
									 "WHERE id OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'failed'",
									 PG_GETARG_INT64(0));

	if (done)
		clerk_change_wake_at_commit();
	PG_RETURN_BOOL(done);
}
