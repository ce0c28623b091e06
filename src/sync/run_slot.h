/*
 * run_slot.h
 *		Shared memory of sync runs: their slots, and every change to a slot.
 *
 * A starter reserves a slot and fills in the run's settings; the worker
 * takes the slot, publishes its run id, progress and messages there, and
 * marks the slot done when it exits; callers waiting for the run read it.
 *
 * The locking rule: every field of every slot is protected by the one
 * LWLock of the slots.  It is taken exclusively to change a field and at
 * least shared to read one, and only in run_slot.c, which is the only file
 * that sees a slot's fields: other files read a slot through
 * clerk_slot_view() and clerk_slot_messages(), which copy what they read
 * under the lock, and change it through the functions below.  A worker is
 * signalled under the lock, so that its pid cannot be reused meanwhile.
 * The condition variable of a slot is broadcast (after the lock is given
 * back) whenever its run id, a message or its state at the end changes.
 */
#ifndef CLERK_RUN_SLOT_H
#define CLERK_RUN_SLOT_H

#include "utils/timestamp.h"

#include "clerk/http.h"
#include "sync/run_settings.h"

#define CLERK_MAX_RUNS 8
#define CLERK_MSG_RING 32
#define CLERK_MSG_LEN 256

typedef enum ClerkSlotState
{
	CLERK_SLOT_FREE = 0,
	CLERK_SLOT_STARTING,		/* reserved, worker not yet running */
	CLERK_SLOT_RUNNING,
	CLERK_SLOT_DONE				/* finished; the run row holds the outcome */
} ClerkSlotState;

/* What clerk.sync_progress shows. */
typedef struct ClerkRunProgress
{
	char		phase[32];
	int64		pages;
	int64		rows;
	int64		total_hint;		/* objects expected in this phase, or -1 */
	int64		requests;
	int64		retries;
	int64		rate_limited;
	int64		rate_limit_waits;
	int			concurrency;	/* requests the HTTP client allows in flight now */
	TimestampTz started_at;
} ClerkRunProgress;

/* A run's slot (its fields are run_slot.c's). */
typedef struct ClerkRunSlot ClerkRunSlot;

/* A slot as it was when read: all of it but the settings and the messages. */
typedef struct ClerkSlotView
{
	ClerkSlotState state;
	uint64		generation;		/* bumped on each reservation */
	Oid			dboid;
	Oid			userid;			/* the role the worker connects as */
	pid_t		worker_pid;
	int64		run_id;			/* 0 until the worker has recorded the run */
	bool		dry_run;
	bool		incremental;
	bool		cancel_requested;
	bool		canceled_by_ddl;	/* DDL on the extension stopped the run */
	TimestampTz reserved_at;	/* when a starter took the slot */
	uint64		msg_seq;		/* messages ever posted */
	ClerkRunProgress progress;
} ClerkSlotView;

/* ---- the shared memory ---- */

/* Install the shared memory hooks; from _PG_init of a preloaded library. */
extern void clerk_run_slots_init(void);
/* Find (or, first of all, make) the slots in this process. */
extern void clerk_run_slots_attach(void);

/* Slot i (0 to CLERK_MAX_RUNS - 1), and the index of a slot. */
extern ClerkRunSlot *clerk_slot_at(int i);
extern int	clerk_slot_index(ClerkRunSlot *slot);

/* ---- reading a slot ---- */

extern void clerk_slot_view(ClerkRunSlot *slot, ClerkSlotView *view);

/*
 * Copy the messages posted since *seq (the oldest CLERK_MSG_RING are lost
 * to a reader that fell behind), if the slot still holds that generation's
 * run; advances *seq and returns how many were copied.
 */
extern int	clerk_slot_messages(ClerkRunSlot *slot, uint64 generation, uint64 *seq,
								char msgs[CLERK_MSG_RING][CLERK_MSG_LEN]);

/* Sleep until the slot's condition variable is broadcast, or timeout_ms. */
extern void clerk_slot_sleep(ClerkRunSlot *slot, long timeout_ms);

/* ---- the starter and the callers that wait ---- */

typedef enum ClerkSlotClaim
{
	CLERK_CLAIM_RESERVED,		/* a free slot is reserved for a new run */
	CLERK_CLAIM_JOINED,			/* the run in progress does what was asked for */
	CLERK_CLAIM_OTHER,			/* a run of another kind is in progress */
	CLERK_CLAIM_FULL			/* no slot is free */
} ClerkSlotClaim;

/*
 * A run for database dboid: the one in progress there, if it does what a
 * call for (incremental, dry_run) asks for (a full run does all an
 * incremental one would); else, if none is in progress, a free slot,
 * reserved with these settings and key for a worker connecting as userid.
 * *slot and *view are the slot (the reserved one, the one joined, or that
 * of the run of another kind) as it was then.
 */
extern ClerkSlotClaim clerk_slot_claim(Oid dboid, bool incremental, bool dry_run, Oid userid,
									   const ClerkRunSettings *settings, const char *key,
									   ClerkRunSlot **slot, ClerkSlotView *view);

/*
 * Give back a slot whose worker never took it (it could not be started, or
 * died first); waiters see it free and stop waiting.
 */
extern void clerk_slot_release_unstarted(ClerkRunSlot *slot, uint64 generation);

/*
 * Ask the worker of a starting or running slot to stop; the run ends
 * "canceled".  SIGINT makes the worker cancel whatever it is doing, a lock
 * wait or a query included.
 */
extern void clerk_slot_cancel(ClerkRunSlot *slot, uint64 generation);

/* The same for every run of database dboid, stopped by DDL; returns how many. */
extern int	clerk_slot_cancel_for_ddl(Oid dboid);

/* ---- the worker ---- */

/*
 * Take a slot reserved for this worker: false if it is no longer this
 * generation's or no longer starting.  Else the slot is running, with this
 * process's pid, and *settings holds the run's settings, key included (the
 * slot's copy of the key is wiped).
 */
extern bool clerk_slot_take(ClerkRunSlot *slot, uint64 generation, ClerkRunSettings *settings,
							ClerkSlotView *view);

/* The run is recorded in clerk.sync_runs under run_id. */
extern void clerk_slot_set_run_id(ClerkRunSlot *slot, int64 run_id);

/* Post a message for waiting callers (at most CLERK_MSG_LEN - 1 bytes of it are kept). */
extern void clerk_slot_post_message(ClerkRunSlot *slot, const char *msg);

/* A new phase: its name and the objects expected (or -1); no rows done yet. */
extern void clerk_slot_set_phase(ClerkRunSlot *slot, const char *phase, int64 total_hint);

/* The rows done in this phase, the run's pages and the HTTP client's counters (if any). */
extern void clerk_slot_set_progress(ClerkRunSlot *slot, int64 pages, int64 rows,
									const ClerkHttpStats *hs);

/* On the worker's exit, whatever the outcome: the slot is done, its key wiped. */
extern void clerk_slot_finish(ClerkRunSlot *slot, uint64 generation);

#endif							/* CLERK_RUN_SLOT_H */
