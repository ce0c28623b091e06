/*
 * launcher.h
 *		Shared memory for sync runs, and the SQL functions that start,
 *		watch and cancel them.
 *
 * Each run has a slot: the caller fills in the settings and starts a
 * background worker; the worker publishes its run id, progress and
 * messages there; callers waiting for the run read them.
 */
#ifndef CLERK_LAUNCHER_H
#define CLERK_LAUNCHER_H

#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "clerk_sync.h"

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

/* Settings a run takes from the session that started it. */
typedef struct ClerkRunSettings
{
	char		api_url[CLERK_MAX_URL_LEN];
	char		secret_key[CLERK_MAX_KEY_LEN];	/* zeroed by the worker once read */
	int			page_size;
	int			request_timeout;
	int			max_retries;
	int			retry_backoff;
	int			rate_limit;
	int			concurrency;
	int			log_retention;
	int			credential_audit_retention;
	int			incremental_overlap;
	double		max_delete_fraction;
} ClerkRunSettings;

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

typedef struct ClerkRunSlot
{
	/* all fields are protected by ClerkShared->lock */
	ClerkSlotState state;
	uint64		generation;		/* bumped on each reservation */
	Oid			dboid;
	Oid			userid;
	pid_t		worker_pid;
	int64		run_id;			/* 0 until the worker has recorded the run */
	bool		dry_run;
	bool		incremental;
	bool		cancel_requested;
	bool		canceled_by_ddl;	/* DDL on the extension stopped the run */
	TimestampTz reserved_at;	/* when a starter took the slot */
	ClerkRunSettings settings;
	ClerkRunProgress progress;
	uint64		msg_seq;		/* messages ever posted */
	char		msgs[CLERK_MSG_RING][CLERK_MSG_LEN];
	ConditionVariable cv;		/* broadcast on run id, message and end */
} ClerkRunSlot;

typedef struct ClerkShared
{
	LWLock	   *lock;
	ClerkRunSlot slots[CLERK_MAX_RUNS];
} ClerkShared;

extern ClerkShared *clerk_shared;

extern void clerk_launcher_shmem_init(void);

/*
 * Stop every run in database dboid and wait (bounded) until they have
 * recorded their end: DDL on the extension calls this before it takes its
 * locks.  Returns the number of runs stopped.
 */
extern int	clerk_stop_runs_for_ddl(Oid dboid);
extern void clerk_shmem_attach(void);

#endif							/* CLERK_LAUNCHER_H */
