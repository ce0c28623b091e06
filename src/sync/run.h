/*
 * run.h
 *		A sync run's state, shared by its parts, and what the run reports.
 */
#ifndef CLERK_RUN_H
#define CLERK_RUN_H

#include "clerk/http.h"
#include "store/store.h"
#include "sync/run_settings.h"
#include "sync/run_slot.h"

typedef struct ClerkRun
{
	int64		run_id;
	bool		dry_run;
	bool		incremental;
	ClerkRunSlot *slot;
	ClerkRunSettings settings;	/* the key is wiped after the client is made */
	ClerkHttpClient *http;
	ClerkHttpStats http_stats;	/* the client's counters, kept after it is gone */
	MemoryContext run_cxt;		/* lives for the run */
	MemoryContext page_cxt;		/* reset after every batch of pages */

	ClerkPageCounts counts[CLERK_NENTITIES];
	int64		deleted[CLERK_NENTITIES];
	bool		listed[CLERK_NENTITIES];	/* listed completely in this run */
	const char *skipped[CLERK_NENTITIES];	/* why an optional entity was not listed */
	int64		pages;
	char	   *deletion_note;	/* why nothing was deleted, if so */
	char	   *users_paging;	/* how the full listing of users paged */
	char	   *memberships_paging; /* how memberships were listed, and why */
	int64		memberships_reread; /* fetched by the listing given up, and read again */
	int64		started_ms;		/* when the run started, Unix ms */
	int64		max_updated_ms; /* newest user updated_at fetched */
	int64		high_water_ms;	/* the mark for the next incremental run */
	int64		since_ms;		/* incremental: fetch users updated after this */
	int64		shifts_repaired;	/* newest-first listings that moved, read again */
	int64		failures_retried;	/* records of earlier failures asked for by id */
	int64		users_total_hint;
	double		wait_ms;		/* time spent waiting for answers */
	double		write_ms;		/* time spent writing pages */
} ClerkRun;

/* Post a progress message for waiting callers (and the server log at DEBUG1). */
extern void clerk_run_message(ClerkRun *run, const char *fmt,...) pg_attribute_printf(2, 3);

/* A new phase in clerk.sync_progress: its name and the objects expected (or -1); no rows done yet. */
extern void clerk_run_phase(ClerkRun *run, const char *phase, int64 total_hint);
/* The rows done in this phase, and the run's pages and request counters, in clerk.sync_progress. */
extern void clerk_run_progress(ClerkRun *run, int64 rows);

/* The stats jsonb text of a run so far. */
extern char *clerk_run_stats_json(ClerkRun *run);

#endif							/* CLERK_RUN_H */
