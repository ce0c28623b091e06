/*
 * run_slot.c
 *		Shared memory of sync runs: their slots, and every change to a slot.
 *
 * See run_slot.h for the locking rule.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "sync/run_slot.h"

struct ClerkRunSlot
{
	ClerkSlotView view;			/* all but the settings and messages */
	ClerkRunSettings settings;
	char		msgs[CLERK_MSG_RING][CLERK_MSG_LEN];
	ConditionVariable cv;		/* broadcast on run id, message and end */
};

typedef struct ClerkShared
{
	LWLock	   *lock;
	ClerkRunSlot slots[CLERK_MAX_RUNS];
} ClerkShared;

static ClerkShared *clerk_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
clerk_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ClerkShared)));
	RequestNamedLWLockTranche("clerk_sync", 1);
}

static void
clerk_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	/* after a crash the postmaster makes shared memory anew: forget the old */
	clerk_shared = NULL;
	clerk_run_slots_attach();
}

void
clerk_run_slots_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = clerk_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = clerk_shmem_startup;
}

void
clerk_run_slots_attach(void)
{
	bool		found;
	int			i;

	if (clerk_shared != NULL)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	clerk_shared = ShmemInitStruct("clerk_sync", sizeof(ClerkShared), &found);
	if (!found)
	{
		memset(clerk_shared, 0, sizeof(ClerkShared));
		clerk_shared->lock = &(GetNamedLWLockTranche("clerk_sync"))->lock;
		for (i = 0; i < CLERK_MAX_RUNS; i++)
			ConditionVariableInit(&clerk_shared->slots[i].cv);
	}
	LWLockRelease(AddinShmemInitLock);
}

ClerkRunSlot *
clerk_slot_at(int i)
{
	Assert(clerk_shared != NULL && i >= 0 && i < CLERK_MAX_RUNS);
	return &clerk_shared->slots[i];
}

int
clerk_slot_index(ClerkRunSlot *slot)
{
	return (int) (slot - clerk_shared->slots);
}

static bool
in_progress(const ClerkRunSlot *s)
{
	return s->view.state == CLERK_SLOT_STARTING || s->view.state == CLERK_SLOT_RUNNING;
}

void
clerk_slot_view(ClerkRunSlot *slot, ClerkSlotView *view)
{
	LWLockAcquire(clerk_shared->lock, LW_SHARED);
	*view = slot->view;
	LWLockRelease(clerk_shared->lock);
}

int
clerk_slot_messages(ClerkRunSlot *slot, uint64 generation, uint64 *seq,
					char msgs[CLERK_MSG_RING][CLERK_MSG_LEN])
{
	int			n = 0;

	LWLockAcquire(clerk_shared->lock, LW_SHARED);
	if (slot->view.generation == generation)
	{
		if (slot->view.msg_seq > *seq + CLERK_MSG_RING)
			*seq = slot->view.msg_seq - CLERK_MSG_RING;
		while (*seq < slot->view.msg_seq)
		{
			strlcpy(msgs[n++], slot->msgs[*seq % CLERK_MSG_RING], CLERK_MSG_LEN);
			(*seq)++;
		}
	}
	LWLockRelease(clerk_shared->lock);
	return n;
}

void
clerk_slot_sleep(ClerkRunSlot *slot, long timeout_ms)
{
	ConditionVariableTimedSleep(&slot->cv, timeout_ms, PG_WAIT_EXTENSION);
}

/* May a call for (incremental, dry_run) take the running run as its own? */
static bool
can_join(const ClerkRunSlot *s, bool incremental, bool dry_run)
{
	if (s->view.dry_run != dry_run)
		return false;
	/* a full run does all an incremental one would, and more */
	return s->view.incremental == incremental || (incremental && !s->view.incremental);
}

ClerkSlotClaim
clerk_slot_claim(Oid dboid, bool incremental, bool dry_run, Oid userid,
				 const ClerkRunSettings *settings, const char *key,
				 ClerkRunSlot **slot, ClerkSlotView *view)
{
	ClerkSlotClaim claim = CLERK_CLAIM_FULL;
	ClerkRunSlot *found = NULL;
	int			i;

	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < CLERK_MAX_RUNS && found == NULL; i++)
	{
		ClerkRunSlot *s = &clerk_shared->slots[i];

		if (in_progress(s) && s->view.dboid == dboid)
		{
			found = s;
			claim = can_join(s, incremental, dry_run) ? CLERK_CLAIM_JOINED : CLERK_CLAIM_OTHER;
		}
	}
	for (i = 0; i < CLERK_MAX_RUNS && found == NULL; i++)
	{
		ClerkRunSlot *s = &clerk_shared->slots[i];

		if (s->view.state == CLERK_SLOT_FREE || s->view.state == CLERK_SLOT_DONE)
		{
			found = s;
			claim = CLERK_CLAIM_RESERVED;
			/* no worker, run id, cancel, progress or message yet */
			s->view = (ClerkSlotView) {.state = CLERK_SLOT_STARTING, .generation = s->view.generation + 1,
			.dboid = dboid, .userid = userid, .dry_run = dry_run, .incremental = incremental,
			.reserved_at = GetCurrentTimestamp(), .progress.total_hint = -1};
			s->settings = *settings;
			strlcpy(s->settings.secret_key, key, sizeof(s->settings.secret_key));
		}
	}
	if (found != NULL)
		*view = found->view;
	LWLockRelease(clerk_shared->lock);
	*slot = found;
	return claim;
}

/*
 * The run of the slot's generation is over: the slot is FREE (a run whose
 * worker never took it, only while it is starting) or DONE, without a
 * worker or a key; waiters wake up.
 */
static void
set_over(ClerkRunSlot *slot, uint64 generation, ClerkSlotState state)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	if (slot->view.generation == generation &&
		(state == CLERK_SLOT_DONE || slot->view.state == CLERK_SLOT_STARTING))
	{
		slot->view.state = state;
		slot->view.worker_pid = 0;
		explicit_bzero(slot->settings.secret_key, sizeof(slot->settings.secret_key));
	}
	LWLockRelease(clerk_shared->lock);
	ConditionVariableBroadcast(&slot->cv);
}

void
clerk_slot_release_unstarted(ClerkRunSlot *slot, uint64 generation)
{
	set_over(slot, generation, CLERK_SLOT_FREE);
}

/* Mark a slot canceled and signal its worker, if it has one; the caller holds the lock. */
static void
cancel_locked(ClerkRunSlot *s)
{
	s->view.cancel_requested = true;
	if (s->view.worker_pid > 0)
		kill(s->view.worker_pid, SIGINT);
}

void
clerk_slot_cancel(ClerkRunSlot *slot, uint64 generation)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	if (slot->view.generation == generation && in_progress(slot))
		cancel_locked(slot);
	LWLockRelease(clerk_shared->lock);
}

int
clerk_slot_cancel_for_ddl(Oid dboid)
{
	int			stopped = 0;

	if (clerk_shared == NULL)
		return 0;
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < CLERK_MAX_RUNS; i++)
	{
		ClerkRunSlot *s = &clerk_shared->slots[i];

		if (s->view.dboid == dboid && in_progress(s))
		{
			s->view.canceled_by_ddl = true;
			cancel_locked(s);
			stopped++;
		}
	}
	LWLockRelease(clerk_shared->lock);
	return stopped;
}

bool
clerk_slot_take(ClerkRunSlot *slot, uint64 generation, ClerkRunSettings *settings,
				ClerkSlotView *view)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	if (slot->view.generation != generation || slot->view.state != CLERK_SLOT_STARTING)
	{
		LWLockRelease(clerk_shared->lock);
		return false;
	}
	*settings = slot->settings;
	explicit_bzero(slot->settings.secret_key, sizeof(slot->settings.secret_key));
	slot->view.worker_pid = MyProcPid;
	slot->view.state = CLERK_SLOT_RUNNING;
	slot->view.progress.started_at = GetCurrentTimestamp();
	slot->view.progress.total_hint = -1;
	*view = slot->view;
	LWLockRelease(clerk_shared->lock);
	return true;
}

void
clerk_slot_set_run_id(ClerkRunSlot *slot, int64 run_id)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	slot->view.run_id = run_id;
	LWLockRelease(clerk_shared->lock);
	ConditionVariableBroadcast(&slot->cv);
}

void
clerk_slot_post_message(ClerkRunSlot *slot, const char *msg)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->msgs[slot->view.msg_seq % CLERK_MSG_RING], msg, CLERK_MSG_LEN);
	slot->view.msg_seq++;
	LWLockRelease(clerk_shared->lock);
	ConditionVariableBroadcast(&slot->cv);
}

void
clerk_slot_set_phase(ClerkRunSlot *slot, const char *phase, int64 total_hint)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->view.progress.phase, phase, sizeof(slot->view.progress.phase));
	slot->view.progress.rows = 0;
	slot->view.progress.total_hint = total_hint;
	LWLockRelease(clerk_shared->lock);
}

void
clerk_slot_set_progress(ClerkRunSlot *slot, int64 pages, int64 rows, const ClerkHttpStats *hs)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	slot->view.progress.pages = pages;
	slot->view.progress.rows = rows;
	if (hs)
	{
		slot->view.progress.requests = hs->requests;
		slot->view.progress.retries = hs->retries;
		slot->view.progress.rate_limited = hs->rate_limited;
		slot->view.progress.rate_limit_waits = hs->rate_limit_waits;
		slot->view.progress.concurrency = hs->concurrency;
	}
	LWLockRelease(clerk_shared->lock);
}

void
clerk_slot_finish(ClerkRunSlot *slot, uint64 generation)
{
	set_over(slot, generation, CLERK_SLOT_DONE);
}
