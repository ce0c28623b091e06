/*
 * change_workers.c
 *		The write-back's background workers: the launcher (one per server) and a sender per database.
 *
 * A commit that queued a change starts its database's sender, or wakes it
 * (changes/sender_slot.c).  The launcher is what makes a change committed
 * before a restart, a crash or a failover go out without any statement:
 * when the server starts (on a standby: when it is promoted) it starts a
 * sender in each database in turn, which sends what is pending and exits;
 * afterwards it starts the senders a commit could not start (no worker
 * slot free) as soon as one is.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/extension.h"
#include "changes/send.h"
#include "changes/sender_slot.h"
#include "runs/change_workers.h"
#include "store/role.h"

PGDLLEXPORT void clerk_sync_launcher_main(Datum main_arg);
PGDLLEXPORT void clerk_sync_sender_main(Datum main_arg);

/* the launcher looks for senders it could not start this often */
#define LAUNCHER_NAP_MS 10000
/* how long the launcher lets one database's first sender take before the next */
#define PROBE_WAIT_MS 30000
#define MAX_WANTED 64
/* after an error, a sender waits this long (or for a commit) before it goes on */
#define ERROR_PAUSE_MS 5000

void
clerk_change_workers_init(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "clerk_sync", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "clerk_sync_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "clerk_sync write-back launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "clerk_sync write-back launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* The databases a sender may connect to. */
static List *
database_list(void)
{
	List	   *oids = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(caller);
		oids = lappend_oid(oids, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return oids;
}

static void
nap(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* Start a sender that only finishes what is pending, and let it run a while alone. */
static void
probe(Oid dboid)
{
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	int			waited = 0;

	if (!clerk_sender_start(dboid, true, &handle))
	{
		clerk_sender_want(dboid, GetCurrentTimestamp());
		return;
	}
	while (waited < PROBE_WAIT_MS && GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED)
	{
		nap(100);
		waited += 100;
	}
}

void
clerk_sync_launcher_main(Datum main_arg)
{
	List	   *dbs;
	ListCell   *lc;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("clerk_sync write-back launcher");
	clerk_sender_set_launcher();

	/* what was committed before the server (re)started, or before a promotion */
	dbs = database_list();
	foreach(lc, dbs)
		probe(lfirst_oid(lc));

	for (;;)
	{
		Oid			wanted[MAX_WANTED];
		int			n = clerk_sender_take_wanted(wanted, MAX_WANTED);

		for (int i = 0; i < n; i++)
			if (!clerk_sender_start(wanted[i], false, NULL))
				clerk_sender_start_failed(wanted[i]);
		nap(LAUNCHER_NAP_MS);
	}
}

/* On any exit, the sender's slot is free again. */
static void
sender_exit(int code, Datum arg)
{
	clerk_sender_release();
}

/* Whether the database has the extension, at a version with the write-back. */
static bool
has_write_back(void)
{
	bool		ok;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ok = SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
					 "WHERE extname OPERATOR(pg_catalog.=) 'clerk_sync' "
					 "AND pg_catalog.to_regclass('clerk.changes') IS NOT NULL", true, 1) == SPI_OK_SELECT &&
		SPI_processed > 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return ok;
}

void
clerk_sync_sender_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	bool		probe_only;

	memcpy(&probe_only, MyBgworkerEntry->bgw_extra, sizeof(probe_only));
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	before_shmem_exit(sender_exit, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("clerk_sync write-back");
	if (!clerk_sender_claim())
		proc_exit(0);			/* another sender has this database */
	if (!has_write_back())
		proc_exit(0);
	clerk_writer_session();
	for (;;)
	{
		MemoryContext cxt = CurrentMemoryContext;
		bool		failed = false;

		PG_TRY();
		{
			clerk_send_changes(probe_only);
		}
		PG_CATCH();
		{
			/* logged; what was in flight is in doubt, and looked up or sent again */
			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			RESUME_INTERRUPTS();
			failed = true;
		}
		PG_END_TRY();
		if (!failed)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ERROR_PAUSE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		/* the extension was dropped (or its SQL is older than the write-back): nothing to send */
		if (!has_write_back())
			break;
		/* a commit may have started another sender meanwhile: one sends, never two */
		if (!clerk_sender_claim())
			break;
	}
	proc_exit(0);
}
