/*
 * rate_budget.h
 *		The Clerk instance's request budget, shared by every process of a database: syncs and write-back together.
 */
#ifndef CLERK_RATE_BUDGET_H
#define CLERK_RATE_BUDGET_H

/* At server start (shared_preload_libraries): ask for the shared memory. */
extern void clerk_rate_budget_init(void);

/*
 * May a request start at now_ms (a monotonic clock in ms) under `limit`
 * requests per 10 s, counting every request of this database's processes?
 * If so it is counted and 0 is returned; if not, the time (same clock) at
 * which one may.  Without shared memory (the library not preloaded, or more
 * databases at once than it has room for) it always answers 0: the
 * caller's own window still applies.
 */
extern int64 clerk_rate_budget_take(int limit, int64 now_ms);

#endif							/* CLERK_RATE_BUDGET_H */
