/*
 * rate_budget.c
 *		The Clerk instance's request budget, shared by every process of a database: syncs and write-back together.
 *
 * Clerk limits requests per instance (its secret key), whoever sends them;
 * a database syncs one instance, so the budget is kept per database.  Each
 * database's budget counts request starts in 100 ms buckets over the last
 * 10 s.  A start is refused when the buckets that may still hold a start
 * of the last 10 s (the current one and the 100 before it) hold `limit`:
 * counting whole buckets errs on the side of fewer requests, never more.
 * Only numbers live here: no pointer of one process.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "clerk/rate_budget.h"

#define BUCKET_MS 100
#define WINDOW_MS 10000
#define NBUCKETS 128			/* > WINDOW_MS / BUCKET_MS + 1, a power of two */
#define COUNTED (WINDOW_MS / BUCKET_MS + 1) /* buckets a window may touch */
#define MAX_DATABASES 32

typedef struct Budget
{
	Oid			dboid;			/* InvalidOid: free */
	int64		last_bucket;	/* the newest bucket written */
	int32		count[NBUCKETS];
} Budget;

typedef struct Budgets
{
	slock_t		mutex;
	Budget		db[MAX_DATABASES];
} Budgets;

static Budgets *budgets = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
budget_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(Budgets)));
}

static void
budget_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	budgets = ShmemInitStruct("clerk_sync rate budget", sizeof(Budgets), &found);
	if (!found)
	{
		memset(budgets, 0, sizeof(Budgets));
		SpinLockInit(&budgets->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
clerk_rate_budget_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = budget_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = budget_shmem_startup;
}

/* Zero the buckets between the newest written and `bucket`, which becomes the newest. */
static void
advance(Budget *b, int64 bucket)
{
	int64		i;

	if (bucket <= b->last_bucket)
		return;
	if (bucket - b->last_bucket >= NBUCKETS)
		memset(b->count, 0, sizeof(b->count));
	else
		for (i = b->last_bucket + 1; i <= bucket; i++)
			b->count[i % NBUCKETS] = 0;
	b->last_bucket = bucket;
}

/* This database's budget, claimed if it has none yet; NULL if none is free. */
static Budget *
my_budget(int64 bucket)
{
	Budget	   *free_one = NULL;
	int			i;

	for (i = 0; i < MAX_DATABASES; i++)
	{
		Budget	   *b = &budgets->db[i];

		if (b->dboid == MyDatabaseId)
			return b;
		/* a budget untouched for a window is free for another database */
		if (free_one == NULL &&
			(b->dboid == InvalidOid || bucket - b->last_bucket > COUNTED))
			free_one = b;
	}
	if (free_one != NULL)
	{
		memset(free_one, 0, sizeof(Budget));
		free_one->dboid = MyDatabaseId;
		free_one->last_bucket = bucket;
	}
	return free_one;
}

int64
clerk_rate_budget_take(int limit, int64 now_ms)
{
	int64		bucket = now_ms / BUCKET_MS;
	int64		permit = 0;
	int			used = 0;
	Budget	   *b;
	int64		i;

	if (budgets == NULL || !OidIsValid(MyDatabaseId))
		return 0;
	SpinLockAcquire(&budgets->mutex);
	b = my_budget(bucket);
	if (b != NULL)
	{
		advance(b, bucket);
		for (i = bucket - COUNTED + 1; i <= bucket; i++)
			used += b->count[((i % NBUCKETS) + NBUCKETS) % NBUCKETS];
		if (used < limit)
			b->count[bucket % NBUCKETS]++;
		else
		{
			/* the earliest bucket whose leaving the window frees a start */
			int			left = used;

			for (i = bucket - COUNTED + 1; i <= bucket; i++)
			{
				left -= b->count[((i % NBUCKETS) + NBUCKETS) % NBUCKETS];
				if (left < limit)
					break;
			}
			permit = (i + COUNTED) * BUCKET_MS;
		}
	}
	SpinLockRelease(&budgets->mutex);
	return permit;
}
