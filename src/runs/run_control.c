/*
 * run_control.c
 *		Sync runs from the caller's side: start or join, wait, watch, cancel.
 *
 * The SQL functions clerk_sync_all(), clerk_sync_changes(),
 * clerk_sync_cancel() and clerk_sync_progress(), and the stop that DDL on
 * the extension asks for.  A run belongs to one database; a second call
 * while one is running there joins it instead of starting another.  The
 * caller copies its settings into the run's slot, starts a dynamic
 * background worker, and (with wait) relays the worker's messages as
 * NOTICEs until the run ends.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "base/extension.h"
#include "base/settings.h"
#include "runs/run_control.h"
#include "store/role.h"
#include "sync/run_slot.h"
#include "vault/secrets.h"

/* a joiner gives up on a slot whose starter never got its worker going after this long */
#define STARTING_SLOT_ABANDONED_MS (600 * 1000 + 5000)

/* how long DDL on the extension waits for the runs it stops */
#define DDL_STOP_TIMEOUT_MS 10000

/*
 * libpq/libpq.h declares it, but that header needs the GSSAPI headers of
 * the server's build; the function itself is always there (PostgreSQL 14+).
 */
extern bool pq_check_connection(void);

PG_FUNCTION_INFO_V1(clerk_sync_all);
PG_FUNCTION_INFO_V1(clerk_sync_changes);
PG_FUNCTION_INFO_V1(clerk_sync_cancel);
PG_FUNCTION_INFO_V1(clerk_sync_progress);

/*
 * The run row, as a composite Datum of type clerk.sync_runs, and its
 * status, error and error_code (palloc'd text or NULL).
 */
static Datum
read_run(int64 run_id, char **status, char **error, char **code)
{
	ClerkSavedUser saved;
	Datum		arg = Int64GetDatum(run_id);
	Oid			argtype = INT8OID;
	HeapTupleHeader result;
	MemoryContext mcxt = CurrentMemoryContext;
	HeapTuple	tuple;
	TupleDesc	desc;
	MemoryContext old;

	clerk_become_writer(&saved, CLERK_SQL_FOR_SYNC);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a fresh snapshot: the worker committed the row after we started */
	if (SPI_execute_with_args("SELECT * FROM clerk.sync_runs WHERE id = $1",
							  1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read clerk.sync_runs");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("sync run " INT64_FORMAT " is not recorded in clerk.sync_runs", run_id)));
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(mcxt);
	*status = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "status"));
	*error = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "error"));
	*code = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "error_code"));
	MemoryContextSwitchTo(old);
	result = SPI_returntuple(tuple, desc);
	SPI_finish();
	clerk_restore_user(&saved);
	return PointerGetDatum(result);
}

/*
 * Relay messages posted since *seq as NOTICEs.  The worker wrote them (run.c)
 * in its own process; here they are only passed on, as they are.
 */
static void
relay_messages(ClerkRunSlot *slot, uint64 generation, uint64 *seq)
{
	char		msgs[CLERK_MSG_RING][CLERK_MSG_LEN];
	int			n = clerk_slot_messages(slot, generation, seq, msgs);

	for (int i = 0; i < n; i++)
		ereport(NOTICE,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_internal("%s", msgs[i])));
}

typedef struct WaitState
{
	ClerkRunSlot *slot;
	uint64		generation;
} WaitState;

/* Whether a run of database dboid is running (its worker has not ended yet). */
static bool
database_running(Oid dboid)
{
	for (int i = 0; i < CLERK_MAX_RUNS; i++)
	{
		ClerkSlotView v;

		clerk_slot_view(clerk_slot_at(i), &v);
		if (v.dboid == dboid && v.state == CLERK_SLOT_RUNNING)
			return true;
	}
	return false;
}

int
clerk_stop_runs_for_ddl(Oid dboid)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DDL_STOP_TIMEOUT_MS);
	int			stopped = clerk_slot_cancel_for_ddl(dboid);

	while (stopped > 0)
	{
		if (!database_running(dboid) || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return stopped;
}

/* The session that started a run takes it down with it, on ERROR or exit. */
static void
cancel_on_exit(int code, Datum arg)
{
	WaitState  *ws = (WaitState *) DatumGetPointer(arg);

	clerk_slot_cancel(ws->slot, ws->generation);
}

/* Whether pid is among the processes that block `blocked` (pg_blocking_pids). */
static bool
blocked_by(pid_t blocked, pid_t pid)
{
	ArrayType  *arr = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(blocked)));
	Datum	   *pids;
	int			n;

	deconstruct_array(arr, INT4OID, sizeof(int32), true, TYPALIGN_INT, &pids, NULL, &n);
	for (int i = 0; i < n; i++)
		if (DatumGetInt32(pids[i]) == pid)
			return true;
	return false;
}

/*
 * What a waiting caller checks now and then, since a wait on a condition
 * variable is invisible to the deadlock detector and sends nothing to the
 * client: that its client is still there, and that the worker does not
 * wait for a lock this very session holds.  Either way the wait ends in an
 * error (and, for the session that started the run, the run is canceled).
 */
static void
check_waiting(ClerkRunSlot *slot, uint64 generation)
{
	ClerkSlotView v;
	pid_t		worker;

	/* (a background worker, such as pg_cron's, has no client connection) */
	if (whereToSendOutput == DestRemote && MyProcPort != NULL && !pq_check_connection())
		ereport(FATAL,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("connection to client lost while waiting for a clerk_sync run"),
				 errdetail("A run started by this session is canceled.")));

	clerk_slot_view(slot, &v);
	worker = v.generation == generation ? v.worker_pid : 0;
	if (worker > 0 && blocked_by(worker, MyProcPid))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
				 errmsg("deadlock detected: the clerk_sync worker waits for a lock held by this session"),
				 errdetail("Process %d runs the sync and waits for this session's transaction, which waits for the run.", (int) worker),
				 errhint("Call clerk_sync_all() and clerk_sync_changes() outside a transaction block that has written or locked clerk tables.")));
}

/*
 * Wait until the slot's run has a run id (and, with until_done, has
 * ended), relaying messages.  Returns the run id, 0 if the worker ended
 * without recording one.  The starter passes its worker's handle, to notice
 * a worker that died before it could take its slot.
 */
static int64
wait_loop(ClerkRunSlot *slot, uint64 generation, bool until_done,
		  BackgroundWorkerHandle *handle, uint64 *seq)
{
	int64		run_id = 0;

	for (;;)
	{
		ClerkSlotView v;
		bool		ours;
		bool		done;
		pid_t		pid;

		relay_messages(slot, generation, seq);
		clerk_slot_view(slot, &v);
		ours = v.generation == generation;
		done = !ours || v.state == CLERK_SLOT_DONE || v.state == CLERK_SLOT_FREE;
		if (ours)
			run_id = v.run_id;
		pid = ours ? v.worker_pid : 0;
		/* a worker that is gone without a word (it always leaves one) */
		if (!done && v.state == CLERK_SLOT_RUNNING && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
			done = true;
		if (done || (!until_done && run_id != 0))
			break;
		if (handle != NULL && v.state == CLERK_SLOT_STARTING &&
			GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			/* the worker is gone without having taken its slot */
			clerk_slot_release_unstarted(slot, generation);
			continue;
		}
		/* a slot its starter never got going (the starter is gone) */
		if (handle == NULL && v.state == CLERK_SLOT_STARTING &&
			TimestampDifferenceExceeds(v.reserved_at, GetCurrentTimestamp(), STARTING_SLOT_ABANDONED_MS))
		{
			clerk_slot_release_unstarted(slot, generation);
			continue;
		}
		check_waiting(slot, generation);
		clerk_slot_sleep(slot, 250);
	}
	ConditionVariableCancelSleep();
	/* the last words of a run that just ended */
	relay_messages(slot, generation, seq);
	return run_id;
}

/*
 * wait_loop(); the starter (who passes its worker's handle) cancels the run
 * if it fails or exits while waiting.
 */
static int64
wait_for_run(ClerkRunSlot *slot, uint64 generation, bool until_done,
			 BackgroundWorkerHandle *handle, uint64 *seq)
{
	volatile int64 run_id = 0;
	WaitState	ws = {slot, generation};

	if (handle == NULL)
		return wait_loop(slot, generation, until_done, NULL, seq);

	PG_ENSURE_ERROR_CLEANUP(cancel_on_exit, PointerGetDatum(&ws));
	{
		run_id = wait_loop(slot, generation, until_done, handle, seq);
	}
	PG_END_ENSURE_ERROR_CLEANUP(cancel_on_exit, PointerGetDatum(&ws));
	return run_id;
}

/* Whether this transaction holds a lock on a relation in schema clerk. */
static bool
holds_clerk_locks(void)
{
	Oid			clerk = get_namespace_oid("clerk", true);
	LockData   *locks;
	bool		found = false;

	if (!OidIsValid(clerk))
		return false;
	locks = GetLockStatusData();
	for (int i = 0; i < locks->nelements && !found; i++)
	{
		LockInstanceData *l = &locks->locks[i];

		if (l->pid == MyProcPid && l->holdMask != 0 &&
			l->locktag.locktag_type == LOCKTAG_RELATION &&
			l->locktag.locktag_field1 == MyDatabaseId &&
			get_rel_namespace(l->locktag.locktag_field2) == clerk)
			found = true;
	}
	return found;
}


/* Until the worker runs (or stopped already), or ERROR at the deadline. */
static void
await_loop(BackgroundWorkerHandle *handle, TimestampTz deadline)
{
	pid_t		pid;

	for (;;)
	{
		BgwHandleStatus st = GetBackgroundWorkerPid(handle, &pid);

		if (st == BGWH_STARTED || st == BGWH_STOPPED)
			return;
		if (st == BGWH_POSTMASTER_DIED)
			ereport(ERROR,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("the server is shutting down")));
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("the clerk_sync background worker did not start within %d ms (clerk_sync.worker_start_timeout)",
							clerk_sync_worker_start_timeout),
					 errdetail("Its run slot was given back; no run was recorded."),
					 errhint("Check max_worker_processes and the server log.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Wait, bounded, for a registered worker to start; a worker that stopped
 * first is noticed by wait_for_run().  Whatever ends the wait early (the
 * deadline, a cancel) stops the worker and gives its slot back.
 */
static void
await_worker_start(BackgroundWorkerHandle *handle, ClerkRunSlot *slot, uint64 generation)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), clerk_sync_worker_start_timeout);

	PG_TRY();
	{
		await_loop(handle, deadline);
	}
	PG_CATCH();
	{
		TerminateBackgroundWorker(handle);
		clerk_slot_release_unstarted(slot, generation);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Wait for a run of another kind to end; the caller's key is wiped if the wait fails. */
static void
wait_for_other(ClerkRunSlot *other, uint64 generation, char *key)
{
	uint64		seq = 0;

	PG_TRY();
	{
		(void) wait_for_run(other, generation, true, NULL, &seq);
	}
	PG_CATCH();
	{
		explicit_bzero(key, strlen(key));
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* Register the background worker of a reserved slot, and wait for it to start. */
static BackgroundWorkerHandle *
start_worker(ClerkRunSlot *slot, uint64 generation, bool incremental)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle = NULL;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "clerk_sync", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "clerk_sync_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "clerk_sync %s sync", incremental ? "incremental" : "full");
	strlcpy(worker.bgw_type, "clerk_sync worker", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(clerk_slot_index(slot));
	memcpy(worker.bgw_extra, &generation, sizeof(generation));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		clerk_slot_release_unstarted(slot, generation);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a clerk_sync background worker"),
				 errhint("Raise max_worker_processes; clerk_sync needs one worker per running sync.")));
	}
	await_worker_start(handle, slot, generation);
	return handle;
}

/*
 * A run's row, once the caller has waited for it (with wait, until it
 * ended): its failure raised as an ERROR of its SQLSTATE, its cancel as a
 * WARNING.
 */
static Datum
run_outcome(int64 run_id, bool wait)
{
	char	   *status,
			   *error,
			   *code;
	Datum		row = read_run(run_id, &status, &error, &code);

	if (!wait)
		return row;
	if (status == NULL || strcmp(status, "running") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("sync run " INT64_FORMAT " stopped without recording how it ended", run_id),
				 errdetail("The next run marks it failed."),
				 errhint("The server log has the worker's error.")));
	if (strcmp(status, "failed") == 0)
	{
		int			sqlstate = ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;

		if (code != NULL && strlen(code) == 5)
			sqlstate = MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]);
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("sync run " INT64_FORMAT " failed: %s", run_id, error ? error : "unknown error"),
				 errdetail("The run is recorded in clerk.sync_runs; pages committed before the failure are kept."),
				 errhint("See clerk_sync_logs() and clerk.audit_logs for details.")));
	}
	if (strcmp(status, "canceled") == 0)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("sync run " INT64_FORMAT " was canceled", run_id),
				 errdetail("Pages committed before the cancel are kept; nothing was deleted.")));
	return row;
}

/*
 * Start (or join) a run in this database and return its row; see
 * clerk_sync_all().
 */
static Datum
start_run(FunctionCallInfo fcinfo, bool incremental, bool dry_run, bool wait)
{
	const char *fname = incremental ? "clerk_sync_changes()" : "clerk_sync_all()";
	ClerkRunSettings settings;
	ClerkRunSlot *slot;
	ClerkSlotView v;
	ClerkSlotClaim claim;
	uint64		generation;
	uint64		seq;
	char	   *key;
	int64		run_id;
	BackgroundWorkerHandle *handle = NULL;
	Oid			connect_as;

	clerk_require_preload(fname);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot run a clerk_sync run on a server in recovery"),
				 errdetail("A run writes to the clerk tables, which a hot standby cannot."),
				 errhint("Call %s on the primary; clerk_status() and the read functions work here.", fname)));
	if (wait && IsTransactionBlock() &&
		(GetTopTransactionIdIfAny() != InvalidTransactionId || holds_clerk_locks()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot wait for its run in a transaction block that has written or locked clerk tables",
						fname),
				 errdetail("The run's worker would wait for this transaction, and this transaction for the run."),
				 errhint("Commit or roll back first, or call it with wait => false.")));
	clerk_run_slots_attach();
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot start a sync run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The run records itself in its own transactions, which this transaction's snapshot cannot see."),
				 errhint("Call it in a READ COMMITTED transaction.")));

	key = clerk_run_key();
	connect_as = clerk_worker_role();
	clerk_run_settings_capture(&settings);

	/* a run of another kind is going: let it finish, then start ours */
	while ((claim = clerk_slot_claim(MyDatabaseId, incremental, dry_run, connect_as, &settings, key,
									 &slot, &v)) == CLERK_CLAIM_OTHER)
	{
		ereport(NOTICE,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("waiting for the %s sync run in progress to finish",
						v.dry_run ? "dry" : v.incremental ? "incremental" : "full")));
		wait_for_other(slot, v.generation, key);
	}
	explicit_bzero(key, strlen(key));
	if (claim == CLERK_CLAIM_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many sync runs in progress"),
				 errdetail("At most %d databases can sync at the same time.", CLERK_MAX_RUNS)));
	generation = v.generation;
	seq = v.msg_seq;

	if (claim == CLERK_CLAIM_RESERVED)
		handle = start_worker(slot, generation, incremental);

	run_id = wait_for_run(slot, generation, wait, handle, &seq);
	clerk_slot_view(slot, &v);
	if (v.generation == generation && v.canceled_by_ddl)
	{
		/* its row may be gone with the extension: nothing to read */
		ereport(WARNING,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("sync run " INT64_FORMAT " was canceled by DDL on the extension", run_id),
				 errdetail("DROP EXTENSION, ALTER EXTENSION or DROP SCHEMA clerk stops running syncs before it proceeds.")));
		PG_RETURN_NULL();
	}
	if (run_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("the clerk_sync worker stopped before recording its run"),
				 errhint("The server log has the worker's error.")));
	return run_outcome(run_id, wait);
}

/*
 * clerk_sync_all(dry_run boolean, wait boolean) returns clerk.sync_runs
 */
Datum
clerk_sync_all(PG_FUNCTION_ARGS)
{
	bool		dry_run = PG_ARGISNULL(0) ? false : PG_GETARG_BOOL(0);
	bool		wait = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);

	return start_run(fcinfo, false, dry_run, wait);
}

/*
 * clerk_sync_changes(wait boolean) returns clerk.sync_runs
 */
Datum
clerk_sync_changes(PG_FUNCTION_ARGS)
{
	bool		wait = PG_ARGISNULL(0) ? true : PG_GETARG_BOOL(0);

	return start_run(fcinfo, true, false, wait);
}

/*
 * Whether the current role may cancel a run whose worker logs in as
 * owner: as pg_cancel_backend() decides for the worker's backend (the
 * owner's privileges, or pg_signal_backend for a run that is not a
 * superuser's).
 */
static bool
may_cancel(Oid owner)
{
	if (has_privs_of_role(GetUserId(), owner))
		return true;
	if (superuser_arg(owner))
		return false;
	return has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND);
}

/*
 * clerk_sync_cancel(run_id bigint) returns boolean
 *
 * True if the run was running in this database and has been asked to stop.
 */
Datum
clerk_sync_cancel(PG_FUNCTION_ARGS)
{
	int64		run_id = PG_GETARG_INT64(0);

	clerk_require_preload("clerk_sync_cancel()");
	clerk_run_slots_attach();
	for (int i = 0; i < CLERK_MAX_RUNS; i++)
	{
		ClerkRunSlot *s = clerk_slot_at(i);
		ClerkSlotView v;

		clerk_slot_view(s, &v);
		if (run_id > 0 && v.run_id == run_id && v.dboid == MyDatabaseId &&
			(v.state == CLERK_SLOT_RUNNING || v.state == CLERK_SLOT_STARTING))
		{
			if (!may_cancel(v.userid))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to cancel sync run " INT64_FORMAT, run_id),
						 errdetail("Only the role that started the run, its members, and roles that pg_cancel_backend() lets signal the run's worker may cancel it."),
						 errhint("Ask the role that started it, or a superuser, to cancel it.")));
			clerk_slot_cancel(s, v.generation);
			PG_RETURN_BOOL(true);
		}
	}
	PG_RETURN_BOOL(false);
}

/*
 * clerk_sync_progress(): the running runs of this database, for the
 * clerk.sync_progress view.
 */
Datum
clerk_sync_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (!clerk_sync_preloaded)
		return (Datum) 0;
	clerk_run_slots_attach();
	for (int i = 0; i < CLERK_MAX_RUNS; i++)
	{
		ClerkSlotView v;
		ClerkRunProgress *p = &v.progress;
		Datum		values[13];
		bool		nulls[13] = {0};

		clerk_slot_view(clerk_slot_at(i), &v);
		if (!((v.state == CLERK_SLOT_RUNNING || v.state == CLERK_SLOT_STARTING) &&
			  v.dboid == MyDatabaseId))
			continue;
		values[0] = Int64GetDatum(v.run_id);
		nulls[0] = v.run_id == 0;
		values[1] = Int32GetDatum(v.worker_pid);
		values[2] = CStringGetTextDatum(v.incremental ? "incremental" : "full");
		values[3] = BoolGetDatum(v.dry_run);
		values[4] = CStringGetTextDatum(p->phase[0] ? p->phase : "starting");
		values[5] = Int64GetDatum(p->pages);
		values[6] = Int64GetDatum(p->rows);
		values[7] = Int64GetDatum(p->total_hint);
		nulls[7] = p->total_hint < 0;
		values[8] = Int64GetDatum(p->requests);
		values[9] = Int64GetDatum(p->retries);
		values[10] = Int64GetDatum(p->rate_limit_waits + p->rate_limited);
		values[11] = TimestampTzGetDatum(p->started_at);
		nulls[11] = p->started_at == 0;
		/* 1.1 added the concurrency; 1.0's function has 12 columns */
		values[12] = Int32GetDatum(p->concurrency);
		nulls[12] = p->concurrency == 0;
		Assert(rsinfo->setDesc->natts <= 13);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
