/*
 * store.h
 *		The one write path from Clerk JSON to the clerk.* tables, shared by
 *		the sync and the webhooks.
 */
#ifndef CLERK_STORE_H
#define CLERK_STORE_H

#include "utils/jsonb.h"

typedef enum ClerkEntity
{
	CLERK_USERS,
	CLERK_ORGANIZATIONS,
	CLERK_MEMBERSHIPS,
	CLERK_NENTITIES
} ClerkEntity;

/* What one page did to its table. */
typedef struct ClerkPageCounts
{
	int64		fetched;
	int64		inserted;
	int64		updated;
	int64		unchanged;
	int64		failed;
} ClerkPageCounts;

/* "users", "organizations", "memberships" */
extern const char *clerk_entity_name(ClerkEntity entity);
/* "clerk.users", ... */
extern const char *clerk_entity_table(ClerkEntity entity);

/*
 * Write one page (or one object) of `entity`: a set-based upsert that
 * leaves unchanged rows untouched, inside a subtransaction; if the page as
 * a whole fails, each object is tried on its own and those that still
 * fail are logged to clerk.audit_logs (with run_id, if not 0).  With
 * dry_run, nothing is written and the counts say what would be.  With
 * track_seen, the page's ids go into the run's pg_temp.clerk_seen table.
 *
 * Call inside a transaction, with a snapshot, as the role that owns the
 * tables; the function connects to SPI itself.
 */
extern void clerk_store_page(ClerkEntity entity, Jsonb *page, bool dry_run,
							 bool track_seen, int64 run_id, ClerkPageCounts *counts);

/* Write one row of clerk.audit_logs (inside a transaction, SPI connected). */
extern void clerk_audit(const char *action, const char *entity_type,
						const char *entity_id, const char *organization_id,
						int64 run_id, const char *details_json);

#endif							/* CLERK_STORE_H */
