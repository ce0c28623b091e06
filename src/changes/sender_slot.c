/*
 * sender_slot.c
 *		Shared memory of the write-back: which database has a sender running, and waking it when a change commits.
 *
 * See sender_slot.h for the states.  The order that makes a commit never go
 * unseen: a commit is visible before its callback reads the slot; a sender
 * publishes RUNNING before it reads the queue, and gives the slot up
 * before its last look at the queue.  So a commit either finds a sender
 * that will look again (its latch set, or still to publish), or finds none
 * and starts one.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "changes/sender_slot.h"

#define MAX_SENDERS 64
/* a sender registered this long ago and not running never came: start another */
#define STARTING_TIMEOUT_MS 30000

typedef enum SenderState
{
	SENDER_NONE = 0,
	SENDER_STARTING,
	SENDER_RUNNING
} SenderState;

typedef struct SenderSlot
{
	Oid			dboid;
	SenderState state;
	int			procno;			/* RUNNING: the sender's PGPROC number */
	TimestampTz starting_since; /* STARTING: since when (a sender that never came is forgotten) */
	bool		wanted;			/* a sender is needed: the launcher starts one at wanted_at */
	TimestampTz wanted_at;
} SenderSlot;

typedef struct Senders
{
	slock_t		mutex;
	int			launcher_procno;	/* -1: no launcher */
	SenderSlot	slot[MAX_SENDERS];
} Senders;

static Senders *senders = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
senders_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(Senders)));
}

static void
senders_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	senders = ShmemInitStruct("clerk_sync senders", sizeof(Senders), &found);
	if (!found)
	{
		memset(senders, 0, sizeof(Senders));
		SpinLockInit(&senders->mutex);
		senders->launcher_procno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
clerk_sender_slots_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = senders_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = senders_shmem_startup;
}

/* dboid's slot, or a free one taken for it; NULL if none is free (lock held). */
static SenderSlot *
slot_of(Oid dboid)
{
	SenderSlot *free_one = NULL;

	for (int i = 0; i < MAX_SENDERS; i++)
	{
		SenderSlot *s = &senders->slot[i];

		if (s->dboid == dboid)
			return s;
		if (free_one == NULL && s->state == SENDER_NONE && !s->wanted)
			free_one = s;
	}
	if (free_one != NULL)
	{
		free_one->dboid = dboid;
		free_one->state = SENDER_NONE;
		free_one->wanted = false;
	}
	return free_one;
}

bool
clerk_sender_start(Oid dboid, bool probe, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "clerk_sync", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "clerk_sync_sender_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "clerk_sync write-back", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "clerk_sync write-back", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &probe, sizeof(probe));
	worker.bgw_notify_pid = handle != NULL ? MyProcPid : 0;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

void
clerk_sender_want(Oid dboid, TimestampTz at)
{
	SenderSlot *s;

	SpinLockAcquire(&senders->mutex);
	s = slot_of(dboid);
	/* (a sender starting or running will see the work itself) */
	if (s != NULL && s->state == SENDER_NONE)
	{
		s->wanted_at = s->wanted ? Min(s->wanted_at, at) : at;
		s->wanted = true;
	}
	SpinLockRelease(&senders->mutex);
}

void
clerk_sender_start_failed(Oid dboid)
{
	SenderSlot *s;

	SpinLockAcquire(&senders->mutex);
	s = slot_of(dboid);
	if (s != NULL && s->state == SENDER_STARTING)
	{
		s->state = SENDER_NONE;
		s->wanted = true;
		s->wanted_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&senders->mutex);
}

void
clerk_sender_wake(Oid dboid)
{
	SenderSlot *s;
	int			procno = -1;
	int			launcher;
	bool		start = false;
	TimestampTz now = GetCurrentTimestamp();

	if (senders == NULL)
		return;
	SpinLockAcquire(&senders->mutex);
	s = slot_of(dboid);
	if (s != NULL)
	{
		if (s->state == SENDER_RUNNING)
			procno = s->procno;
		else if (s->state == SENDER_NONE ||
				 TimestampDifferenceExceeds(s->starting_since, now, STARTING_TIMEOUT_MS))
		{
			s->state = SENDER_STARTING;
			s->starting_since = now;
			s->wanted = false;
			start = true;
		}
	}
	launcher = senders->launcher_procno;
	SpinLockRelease(&senders->mutex);
	if (procno >= 0)
		SetLatch(CLERK_PROC_LATCH(procno));
	else if (start && !clerk_sender_start(dboid, false, NULL))
	{
		/* no worker slot free now: the launcher tries again */
		clerk_sender_start_failed(dboid);
		if (launcher >= 0)
			SetLatch(CLERK_PROC_LATCH(launcher));
	}
}

bool
clerk_sender_claim(void)
{
	SenderSlot *s;
	bool		ok = false;

	SpinLockAcquire(&senders->mutex);
	s = slot_of(MyDatabaseId);
	if (s != NULL && !(s->state == SENDER_RUNNING && s->procno != CLERK_MY_PROCNO))
	{
		s->state = SENDER_RUNNING;
		s->procno = CLERK_MY_PROCNO;
		s->wanted = false;
		ok = true;
	}
	SpinLockRelease(&senders->mutex);
	return ok;
}

void
clerk_sender_release(void)
{
	SpinLockAcquire(&senders->mutex);
	for (int i = 0; i < MAX_SENDERS; i++)
	{
		SenderSlot *s = &senders->slot[i];

		if (s->dboid == MyDatabaseId &&
			(s->state == SENDER_STARTING ||
			 (s->state == SENDER_RUNNING && s->procno == CLERK_MY_PROCNO)))
			s->state = SENDER_NONE;
	}
	SpinLockRelease(&senders->mutex);
}

void
clerk_sender_set_launcher(void)
{
	SpinLockAcquire(&senders->mutex);
	senders->launcher_procno = CLERK_MY_PROCNO;
	SpinLockRelease(&senders->mutex);
}

int
clerk_sender_take_wanted(Oid *dboids, int max)
{
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&senders->mutex);
	for (int i = 0; i < MAX_SENDERS && n < max; i++)
	{
		SenderSlot *s = &senders->slot[i];

		if (s->wanted && s->state == SENDER_NONE && s->wanted_at <= now)
		{
			s->wanted = false;
			s->state = SENDER_STARTING;
			s->starting_since = GetCurrentTimestamp();
			dboids[n++] = s->dboid;
		}
	}
	SpinLockRelease(&senders->mutex);
	return n;
}
