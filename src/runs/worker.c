/*
 * worker.c
 *		The background worker that carries out one sync run.
 *
 * It takes the run's settings from its slot in shared memory, records the
 * run in clerk.sync_runs, does the work (sync.c) and records the outcome,
 * whatever it is.
 */
#include "postgres.h"

#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "store/role.h"
#include "store/transaction.h"
#include "sync/sync.h"

PGDLLEXPORT void clerk_sync_worker_main(Datum main_arg);

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t recording_outcome = false;
static ClerkRunSlot *my_slot = NULL;
static uint64 my_generation = 0;

static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	InterruptPending = true;
	if (recording_outcome)
		ProcDiePending = true;	/* the run is over: just go */
	else
		QueryCancelPending = true;	/* stop a query or lock wait, and record "canceled" */
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Stop the run if asked to, or if the server is going away. */
static void
worker_check_interrupts(void)
{
	ClerkSlotView v;

	if (!PostmasterIsAlive())
		proc_exit(1);
	if (got_sigterm)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("canceled because the clerk_sync worker was asked to terminate")));
	clerk_slot_view(my_slot, &v);
	if (v.cancel_requested)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceled by request")));
}

/* On any exit, the slot says the run is over and waiters wake up. */
static void
worker_exit(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	clerk_slot_finish(my_slot, my_generation);
}

typedef struct BeginArgs
{
	ClerkRun   *run;
	const char *started_by;
} BeginArgs;

/* a bookkeeping statement waits this long for a lock, then the run fails */
#define BOOKKEEPING_LOCK_TIMEOUT "5s"

/*
 * Recording a run's start and end never waits long for a lock (a session,
 * or a prepared transaction, holding the row): it fails instead, and the
 * next run marks the run failed, as after kill -9.
 */
static void
bookkeeping_limits(void)
{
	(void) set_config_option("lock_timeout", BOOKKEEPING_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Record the run: runs left "running" by a worker that died (kill -9, a
 * crash) are marked failed, old runs and audit rows are pruned, and the new
 * run gets its row.
 */
static void
begin_run(void *varg)
{
	BeginArgs  *args = (BeginArgs *) varg;
	ClerkRun   *run = args->run;
	Datum		values[3];
	Oid			types[3] = {TEXTOID, BOOLOID, TEXTOID};
	bool		isnull;
	char	   *details;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	bookkeeping_limits();
	SPI_execute("UPDATE clerk.sync_runs SET status = 'failed', finished_at = clock_timestamp(), "
				"error = 'the worker running it stopped without finishing (server crash or killed process)', "
				"error_code = 'XX000' WHERE status = 'running'", false, 0);
	if (SPI_processed > 0)
		elog(LOG, "clerk_sync: marked " UINT64_FORMAT " interrupted run(s) as failed", SPI_processed);
	clerk_store_prune(run->settings.log_retention, run->settings.credential_audit_retention);
	values[0] = CStringGetTextDatum(run->incremental ? "incremental" : "full");
	values[1] = BoolGetDatum(run->dry_run);
	values[2] = CStringGetTextDatum(args->started_by);
	if (SPI_execute_with_args("INSERT INTO clerk.sync_runs (kind, dry_run, started_by) "
							  "VALUES ($1, $2, $3) RETURNING id",
							  3, types, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not record the sync run");
	run->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	details = psprintf("{\"kind\": \"%s\", \"dry_run\": %s}",
					   run->incremental ? "incremental" : "full", run->dry_run ? "true" : "false");
	clerk_audit(NULL, "sync.start", NULL, NULL, NULL, run->run_id, details);
	/* ids listed during this run, a row per page, for the deletion sweep */
	SPI_execute("CREATE TEMP TABLE IF NOT EXISTS clerk_seen (entity text, ids text[])", false, 0);
	SPI_finish();
}

typedef struct EndArgs
{
	ClerkRun   *run;
	const char *status;
	const char *error;
	const char *error_code;
} EndArgs;

static void
end_run(void *varg)
{
	EndArgs    *args = (EndArgs *) varg;
	ClerkRun   *run = args->run;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	char	   *stats = clerk_run_stats_json(run);
	StringInfoData details;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	bookkeeping_limits();
	values[0] = Int64GetDatum(run->run_id);
	values[1] = CStringGetTextDatum(args->status);
	if (args->error)
		values[2] = CStringGetTextDatum(args->error);
	else
		nulls[2] = 'n';
	if (args->error_code)
		values[3] = CStringGetTextDatum(args->error_code);
	else
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(stats);
	if (SPI_execute_with_args("UPDATE clerk.sync_runs SET status = $2, error = $3, error_code = $4, "
							  "stats = $5::jsonb, finished_at = clock_timestamp() WHERE id = $1",
							  5, types, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the end of the sync run");
	initStringInfo(&details);
	appendStringInfoString(&details, "{\"status\": ");
	escape_json(&details, args->status);
	if (args->error)
	{
		appendStringInfoString(&details, ", \"error\": ");
		escape_json(&details, args->error);
	}
	appendStringInfo(&details, ", \"stats\": %s}", stats);
	clerk_audit(NULL, "sync.end", NULL, NULL, NULL, run->run_id, details.data);
	SPI_finish();
}

void
clerk_sync_worker_main(Datum main_arg)
{
	int			index = DatumGetInt32(main_arg);
	ClerkRun	run;
	BeginArgs	bargs;
	EndArgs		eargs;
	ClerkSlotView v;
	char	   *started_by;
	ErrorData  *volatile edata = NULL;
	MemoryContext mcxt;

	/* SIGINT (clerk_sync_cancel) keeps the standard statement cancel handler */
	pqsignal(SIGINT, StatementCancelHandler);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();

#ifdef __GLIBC__

	/*
	 * Each page allocates and frees a few megabytes at once; glibc would
	 * hand them back to the kernel after each page and fault them in again
	 * for the next (most of the worker's system time).  The worker keeps
	 * them: its peak is the same, and it ends with the run.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
#endif

	clerk_run_slots_attach();
	memcpy(&my_generation, MyBgworkerEntry->bgw_extra, sizeof(my_generation));
	my_slot = clerk_slot_at(index);

	memset(&run, 0, sizeof(run));
	if (!clerk_slot_take(my_slot, my_generation, &run.settings, &v))
	{
		my_slot = NULL;
		proc_exit(0);
	}
	run.dry_run = v.dry_run;
	run.incremental = v.incremental;
	run.slot = my_slot;
	before_shmem_exit(worker_exit, (Datum) 0);

	/* connect as the role that asked for the run */
	BackgroundWorkerInitializeConnectionByOid(v.dboid, v.userid, 0);
	pgstat_report_appname("clerk_sync worker");
	clerk_writer_session();
	clerk_http_interrupt_check = worker_check_interrupts;

	run.run_cxt = AllocSetContextCreate(TopMemoryContext, "clerk_sync run", ALLOCSET_DEFAULT_SIZES);
	run.page_cxt = AllocSetContextCreate(run.run_cxt, "clerk_sync page", ALLOCSET_DEFAULT_SIZES);
	mcxt = run.run_cxt;
	MemoryContextSwitchTo(mcxt);

	StartTransactionCommand();
	started_by = MemoryContextStrdup(mcxt, GetUserNameFromId(v.userid, false));
	CommitTransactionCommand();
	MemoryContextSwitchTo(mcxt);

	bargs.run = &run;
	bargs.started_by = started_by;
	PG_TRY();
	{
		clerk_in_transaction(begin_run, &bargs);
	}
	PG_CATCH();
	{
		/* the run never started: its copy of the key goes now */
		explicit_bzero(run.settings.secret_key, sizeof(run.settings.secret_key));
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(mcxt);

	clerk_slot_set_run_id(my_slot, run.run_id);
	pgstat_report_activity(STATE_RUNNING, run.incremental ? "clerk_sync incremental run" : "clerk_sync full run");

	PG_TRY();
	{
		clerk_sync_execute(&run);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		/* the server log gets the reason too (never a secret: errors don't carry it) */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		LWLockReleaseAll();
		ConditionVariableCancelSleep();
		QueryCancelPending = false;
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(mcxt);

	/* curl goes now, whatever happened: its reset callback frees it */
	if (run.http)
	{
		run.http_stats = *clerk_http_stats(run.http);
		clerk_http_destroy(run.http);
	}
	run.http = NULL;

	eargs.run = &run;
	if (edata == NULL)
	{
		eargs.status = "succeeded";
		eargs.error = NULL;
		eargs.error_code = NULL;
		clerk_run_message(&run, "run " INT64_FORMAT " succeeded", run.run_id);
	}
	else
	{
		bool		canceled = edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;

		eargs.status = canceled ? "canceled" : "failed";
		eargs.error = edata->message;
		eargs.error_code = unpack_sql_state(edata->sqlerrcode);
		clerk_run_message(&run, "run " INT64_FORMAT " %s: %s", run.run_id, eargs.status, edata->message);
	}
	/*
	 * Recording the outcome is not cut short by the cancel (or SIGTERM) that
	 * caused it, but stays interruptible, and waits at most a lock timeout:
	 * a SIGTERM now ends the worker at once, and the next run marks this
	 * one failed.
	 */
	clerk_http_interrupt_check = NULL;
	got_sigterm = false;
	QueryCancelPending = false;
	recording_outcome = true;
	clerk_in_transaction(end_run, &eargs);

	proc_exit(0);
}
