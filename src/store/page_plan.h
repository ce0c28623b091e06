/*
 * page_plan.h
 *		The page plan: one statement that maps a page, records its ids and upserts it.
 */
#ifndef CLERK_PAGE_PLAN_H
#define CLERK_PAGE_PLAN_H

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "utils/jsonb.h"

#include "base/entity.h"

/* What one page did to its table. */
typedef struct ClerkPageCounts
{
	int64		fetched;
	int64		inserted;
	int64		updated;
	int64		unchanged;
	int64		failed;
	int64		repaired;		/* objects stored after the documented repair */
} ClerkPageCounts;

/*
 * What one page held, as the statement that wrote it returns it (so that
 * nothing walks the page again): times in Unix milliseconds, -1 when no
 * object had one.
 */
typedef struct ClerkPageFacts
{
	bool		want_ids;		/* in: return the ids stored */
	int64		max_updated_ms;
	int64		min_updated_ms;
	int64		min_created_ms;
	int64		max_created_ms;
	List	   *ids;			/* with want_ids: of char *, in the caller's memory context */
} ClerkPageFacts;

/* Prepare a plan and keep it for the life of the process (SPI connected). */
extern SPIPlanPtr clerk_prepare_saved(const char *sql, int nargs, Oid *types);

/*
 * Every column of the entity's table but id, in table order ("EXCLUDED."
 * as prefix makes "EXCLUDED.a, ..."); deleted_at, when not NULL, stands for
 * the deleted_at column.  SPI connected.
 */
extern char *clerk_columns_sql(const ClerkEntityInfo *ei, const char *prefix, const char *deleted_at);

/* The rows of the objects of page (an SQL expression of type jsonb): the entity's mapping. */
extern char *clerk_mapped_sql(const ClerkEntityInfo *ei, const char *page);

/*
 * When a stored row s stays as it is against a mapped row m: identical and
 * live, newer, or deleted at or after the page was fetched ($2).
 */
#define CLERK_KEEP_STORED "(s.raw = m.raw AND s.deleted_at IS NULL) OR s.updated_at > m.updated_at OR s.deleted_at >= $2"

/*
 * The page plan of entity e ($1 the page, $2 when it was fetched, $3
 * whether to return the ids): with dry_run it only counts; with track_seen
 * it records the ids in pg_temp.clerk_seen.
 */
extern SPIPlanPtr clerk_page_plan(ClerkEntity e, bool dry_run, bool track_seen);

/* One write of a page (or of some of its objects): what, how, and where its outcome goes. */
typedef struct ClerkPageWrite
{
	SPIPlanPtr	plan;			/* the page plan, for clerk_page_plan_write() */
	ClerkEntity entity;
	Oid			relid;			/* the entity's table, for the bulk path */
	bool		track_seen;		/* (bulk path) record the ids seen */
	Jsonb	   *page;			/* an array of objects */
	TimestampTz fetched_at;
	ClerkPageCounts *counts;	/* added to */
	ClerkPageFacts *facts;		/* merged into */
	MemoryContext mcxt;			/* for the ids */
} ClerkPageWrite;

/* Write with the page plan (a ClerkPageWrite *), SPI connected. */
extern void clerk_page_plan_write(void *write);

/* Times of a page (Unix ms, -1 for none) merged into the facts. */
extern void clerk_merge_facts(ClerkPageFacts *f, int64 max_u, int64 min_u, int64 min_c, int64 max_c);

/*
 * Write in a subtransaction with fn (clerk_page_plan_write or the bulk
 * path) and *write, whose counts and facts are added to only on success.
 * Returns NULL on success, else the error.
 */
extern ErrorData *clerk_try_page_write(void (*fn) (void *), ClerkPageWrite *write);

#endif							/* CLERK_PAGE_PLAN_H */
