/*
 * store.h
 *		The one write path from Clerk JSON to the clerk.* tables, shared by
 *		the sync and the webhooks.
 */
#ifndef CLERK_STORE_H
#define CLERK_STORE_H

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "base/entity.h"
#include "clerk/parse.h"
#include "store/page_plan.h"

/*
 * Write one parsed page (or one object) of `entity`: a set-based upsert
 * that leaves unchanged rows untouched and never writes over a newer row
 * (the ordering rule: a stored updated_at later than the object's wins,
 * and a row deleted at or after fetched_at, when the page was fetched,
 * stays deleted), inside a subtransaction; if the page as a whole fails,
 * each object is tried on its own.  Objects that fail, and elements of the
 * answer that are not objects, are counted, logged to clerk.audit_logs
 * (with run_id, if not 0) and, in a run, kept in clerk.sync_failures for a
 * retry; repaired objects are counted and logged.  With dry_run, nothing
 * is written and the counts say what would be.  With track_seen, the
 * page's ids go into the run's pg_temp.clerk_seen table.  The one statement
 * that writes the page also fills *facts (when not NULL).
 *
 * Call inside a transaction, with a snapshot, as the role that owns the
 * tables; the function connects to SPI itself.
 */
extern void clerk_store_page(ClerkEntity entity, ClerkParsed *page, bool dry_run,
							 bool track_seen, int64 run_id, TimestampTz fetched_at,
							 ClerkPageCounts *counts, ClerkPageFacts *facts);

/* The record `id` was stored after all: forget that it failed (same conventions). */
extern void clerk_store_forget_failure(ClerkEntity entity, const char *id);

/*
 * Forget every failure that run `run_id`'s complete listing stored: listed
 * in it (pg_temp.clerk_seen) and not failed in it.  Same conventions.
 */
extern void clerk_store_forget_listed_failures(int64 run_id);

/*
 * Soft-delete the live rows of `entity` whose ids are in `ids` (a text[]):
 * objects a complete listing missed and Clerk confirmed gone; each one
 * audited, and what goes with them soft-deleted too (clerk_store_cascade).
 * Returns how many.  Same conventions.
 */
extern int64 clerk_store_soft_delete(ClerkEntity entity, ArrayType *ids, int64 run_id);

/*
 * Prune run records and audit rows older than clerk_sync.log_retention,
 * and credential audit rows older than clerk_sync.credential_audit_retention
 * (minutes; 0 keeps them).  SPI connected, as the writer.
 */
extern void clerk_store_prune(int log_retention_min, int credential_audit_retention_min);

/*
 * Delete up to CLERK_PRUNE_BATCH sessions that ended (or were last seen)
 * more than retention_min minutes ago (clerk_sync.session_retention; 0
 * keeps them).  SPI connected, as the writer.
 */
#define CLERK_PRUNE_BATCH 1000
extern void clerk_store_prune_sessions(int retention_min);

/*
 * Write one row of clerk.audit_logs (inside a transaction, SPI connected).
 * actor is who did it: the calling role's name for a function a role calls
 * (the vault's), or NULL for session_user (a run's worker, a webhook
 * delivery).  details_json is a JSON object, never a secret; run_id <= 0
 * and NULL arguments are stored as NULL.
 */
extern void clerk_audit(const char *actor, const char *action, const char *entity_type,
						const char *entity_id, const char *organization_id,
						int64 run_id, const char *details_json);

/* ---- single events, as webhooks deliver them ---- */

/* What clerk_store_event() or clerk_store_delete() did with one object. */
typedef enum ClerkEventOutcome
{
	CLERK_EVENT_INSERTED,		/* no row yet: inserted */
	CLERK_EVENT_UPDATED,		/* the stored row was as old or older: replaced */
	CLERK_EVENT_UNCHANGED,		/* the stored row already holds this object */
	CLERK_EVENT_STALE,			/* the stored row is newer: left as it is */
	CLERK_EVENT_GONE,			/* the row is soft-deleted: left deleted */
	CLERK_EVENT_DELETED,		/* a live row was soft-deleted */
	CLERK_EVENT_TOMBSTONE		/* no row yet: stored already deleted */
} ClerkEventOutcome;

/* "inserted", "updated", "unchanged", "stale", "gone", "deleted", "tombstone" */
extern const char *clerk_event_outcome_name(ClerkEventOutcome outcome);

/*
 * Write one object of `entity` that an event says is current, through the
 * same mapping (clerk.map_*) and column list as clerk_store_page(), but
 * never over newer data: the stored row is replaced only when it is live
 * and its updated_at is not later than the object's.  A soft-deleted row
 * stays deleted, so an event delivered late cannot resurrect it.
 *
 * Call inside a transaction, with a snapshot, as the role that owns the
 * tables; the function connects to SPI itself.  Errors are not caught.
 */
extern ClerkEventOutcome clerk_store_event(ClerkEntity entity, Jsonb *obj, const char *event_type);

/*
 * Soft-delete the object `obj` (at least {"id": ...}; a membership carries
 * all of itself) as of `deleted_at`.  When no row exists yet, the mapped
 * object is stored as a deleted row, a tombstone, so that a create or
 * update delivered after the deletion cannot add it back.  What goes with
 * it goes too (clerk_store_cascade); cascaded, when not NULL, gets how
 * many rows of each entity.
 *
 * Same calling conventions as clerk_store_event().
 */
extern ClerkEventOutcome clerk_store_delete(ClerkEntity entity, Jsonb *obj,
											TimestampTz deleted_at, int64 cascaded[CLERK_NENTITIES]);

/*
 * The one cascade rule, for the sync's sweep and the webhooks alike: when
 * an organization is deleted, its memberships, invitations and domains
 * are soft-deleted with it; when a user is, their memberships and
 * sessions.  ids are the deleted objects' ids; the live dependent rows get
 * deleted_at.  Adds to cascaded[] how many of each.  SPI connected.
 */
extern void clerk_store_cascade(ClerkEntity entity, ArrayType *ids, TimestampTz deleted_at,
								int64 cascaded[CLERK_NENTITIES]);

#endif							/* CLERK_STORE_H */
