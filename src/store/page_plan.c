/*
 * page_plan.c
 *		The page plan: one statement that maps a page, records its ids and upserts it.
 *
 * The page goes to Postgres as one jsonb parameter of a saved plan: the
 * mapping functions (clerk.map_*) turn it into rows, rows identical to what
 * is stored are filtered out before the upsert (so an unchanged object
 * writes nothing at all, not even a row lock), and the rest is inserted or
 * updated with INSERT ... ON CONFLICT under the ordering rule.  The bulk
 * path (page_bulk.c) uses it for stored rows to write over; store.c for
 * pages the bulk path leaves, for a page that failed it, and for each
 * object of a page that failed as a whole.  Also the SQL both build on:
 * the entity's column list and mapping.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/subtransaction.h"
#include "store/page_plan.h"

SPIPlanPtr
clerk_prepare_saved(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Every column of the entity's table but id, in table order, as the
 * catalog has it: "a, b" with each name after prefix ("EXCLUDED." makes
 * "EXCLUDED.a, EXCLUDED.b"); deleted_at, when given, is the expression
 * that stands for the deleted_at column.  SPI connected.
 */
char *
clerk_columns_sql(const ClerkEntityInfo *ei, const char *prefix, const char *deleted_at)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(ei->table)};
	StringInfoData buf;
	uint64		i;

	if (SPI_execute_with_args("SELECT attname::text FROM pg_catalog.pg_attribute "
							  "WHERE attrelid = $1::pg_catalog.regclass AND attnum > 0 "
							  "AND NOT attisdropped AND attname <> 'id' ORDER BY attnum",
							  1, types, values, NULL, true, 0) != SPI_OK_SELECT ||
		SPI_processed == 0)
		elog(ERROR, "could not read the columns of %s", ei->table);
	initStringInfo(&buf);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		if (deleted_at != NULL && strcmp(name, "deleted_at") == 0)
			appendStringInfoString(&buf, deleted_at);
		else
			appendStringInfo(&buf, "%s%s", prefix, quote_identifier(name));
	}
	return buf.data;
}

/*
 * The rows of the objects of page (an SQL expression of type jsonb): the
 * entity's mapping of them, each merged over its stored object first where
 * the entity says so (ClerkEntityInfo.merged_objects).
 */
char *
clerk_mapped_sql(const ClerkEntityInfo *ei, const char *page)
{
	if (ei->merged_objects == NULL)
		return psprintf("%s(%s)", ei->map, page);
	return psprintf("%s((SELECT coalesce(pg_catalog.jsonb_agg(CASE WHEN pg_catalog.jsonb_typeof(x.o) = 'object' "
					"  THEN coalesce(s.raw, '{}'::jsonb) || x.o ELSE x.o END ORDER BY x.n), '[]'::jsonb) "
					"FROM %s(%s) WITH ORDINALITY AS x(o, n) LEFT JOIN %s s ON s.id = x.o ->> 'id'))",
					ei->map, ei->merged_objects, page, ei->table);
}

/*
 * The one statement that writes a page: the mapping (once), the ids seen
 * (with track_seen), then the upsert, or with dry_run the question of what
 * it would do, and what the run needs to know of the page.  Rows that
 * differ from the stored ones (or revive a row deleted before the page was
 * fetched, $2) are written, unless the stored row is newer.  $3: return the
 * ids.  The result is one row: objects, inserted, updated, newest and oldest
 * updated_at, oldest created_at (Unix ms), ids.
 */
static SPIPlanPtr page_plans[CLERK_NENTITIES][2][2];

SPIPlanPtr
clerk_page_plan(ClerkEntity e, bool dry_run, bool track_seen)
{
	SPIPlanPtr *plan = &page_plans[e][dry_run][track_seen];

	if (*plan == NULL)
	{
		const ClerkEntityInfo *ei = &clerk_entities[e];
		Oid			types[3] = {JSONBOID, TIMESTAMPTZOID, BOOLOID};
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "WITH m AS MATERIALIZED (SELECT * FROM %s)", clerk_mapped_sql(ei, "$1"));
		if (track_seen)
			/* one row per page: the cheapest record that still costs no memory */
			appendStringInfo(&sql, ", s AS (INSERT INTO pg_temp.clerk_seen (entity, ids) "
							 "SELECT '%s', array_agg(id) FROM m WHERE id IS NOT NULL HAVING count(*) > 0)",
							 ei->name);
		if (dry_run)
			appendStringInfo(&sql, ", c AS (SELECT count(*) FILTER (WHERE t.id IS NULL) AS ins, "
							 "  count(*) FILTER (WHERE t.id IS NOT NULL AND "
							 "    (t.raw IS DISTINCT FROM m.raw OR t.deleted_at IS NOT NULL) "
							 "    AND NOT coalesce(t.updated_at > m.updated_at, false) "
							 "    AND NOT coalesce(t.deleted_at >= $2, false)) AS upd "
							 "  FROM m LEFT JOIN %s t ON t.id = m.id)",
							 ei->table);
		else
			appendStringInfo(&sql, ", w AS (INSERT INTO %s AS t "
							 "  SELECT m.* FROM m WHERE NOT EXISTS "
							 "    (SELECT 1 FROM %s s WHERE s.id = m.id AND (" CLERK_KEEP_STORED ")) "
							 "  ON CONFLICT (id) DO UPDATE SET (%s) = ROW(%s) "
							 "  WHERE (t.raw IS DISTINCT FROM EXCLUDED.raw OR t.deleted_at IS NOT NULL) "
							 "    AND NOT coalesce(t.updated_at > EXCLUDED.updated_at, false) "
							 "    AND NOT coalesce(t.deleted_at >= $2, false) "
							 "  RETURNING (t.xmax = 0) AS inserted), "
							 "c AS (SELECT count(*) FILTER (WHERE inserted) AS ins, "
							 "  count(*) FILTER (WHERE NOT inserted) AS upd FROM w)",
							 ei->table, ei->table, clerk_columns_sql(ei, "", NULL),
							 clerk_columns_sql(ei, "EXCLUDED.", NULL));
		appendStringInfoString(&sql, " SELECT a.n, c.ins, c.upd, a.max_u, a.min_u, a.min_c, a.max_c, a.ids FROM c, "
							   "(SELECT count(*) AS n, "
							   "  (extract(epoch FROM max(updated_at)) * 1000)::int8 AS max_u, "
							   "  (extract(epoch FROM min(updated_at)) * 1000)::int8 AS min_u, "
							   "  (extract(epoch FROM min(created_at)) * 1000)::int8 AS min_c, "
							   "  (extract(epoch FROM max(created_at)) * 1000)::int8 AS max_c, "
							   "  CASE WHEN $3 THEN array_agg(id) FILTER (WHERE id IS NOT NULL) END AS ids "
							   "  FROM m) a");
		*plan = clerk_prepare_saved(sql.data, 3, types);
	}
	return *plan;
}

static int64
result_int8(int col, int64 if_null)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? if_null : DatumGetInt64(d);
}

/* Times of a page (Unix ms, -1 for none) into the facts. */
void
clerk_merge_facts(ClerkPageFacts *f, int64 max_u, int64 min_u, int64 min_c, int64 max_c)
{
	if (max_u > f->max_updated_ms)
		f->max_updated_ms = max_u;
	if (min_u >= 0 && (f->min_updated_ms < 0 || min_u < f->min_updated_ms))
		f->min_updated_ms = min_u;
	if (min_c >= 0 && (f->min_created_ms < 0 || min_c < f->min_created_ms))
		f->min_created_ms = min_c;
	if (max_c > f->max_created_ms)
		f->max_created_ms = max_c;
}

void
clerk_page_plan_write(void *varg)
{
	ClerkPageWrite *a = (ClerkPageWrite *) varg;
	ClerkPageFacts *f = a->facts;
	Datum		values[3];
	bool		isnull;
	Datum		ids;
	int64		n,
				ins,
				upd;

	values[0] = JsonbPGetDatum(a->page);
	values[1] = TimestampTzGetDatum(a->fetched_at);
	values[2] = BoolGetDatum(f->want_ids);
	if (SPI_execute_plan(a->plan, values, NULL, false, 0) < 0 || SPI_processed != 1)
		elog(ERROR, "clerk_sync upsert returned no result");
	n = result_int8(1, 0);
	ins = result_int8(2, 0);
	upd = result_int8(3, 0);
	a->counts->inserted += ins;
	a->counts->updated += upd;
	a->counts->unchanged += n - ins - upd;
	clerk_merge_facts(f, result_int8(4, -1), result_int8(5, -1), result_int8(6, -1), result_int8(7, -1));
	ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 8, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *enulls;
		int			nelems;
		MemoryContext old = MemoryContextSwitchTo(a->mcxt);

		deconstruct_array(DatumGetArrayTypeP(ids), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &nelems);
		for (int i = 0; i < nelems; i++)
			if (!enulls[i])
				f->ids = lappend(f->ids, TextDatumGetCString(elems[i]));
		MemoryContextSwitchTo(old);
	}
}

/*
 * Write in a subtransaction, with fn (clerk_page_plan_write or
 * clerk_page_bulk_write) and *args (whose counts and facts are the
 * caller's).  Returns NULL on success (the counts and facts added), else
 * the error.
 */
ErrorData *
clerk_try_page_write(void (*fn) (void *), ClerkPageWrite *args)
{
	ClerkPageCounts local = {0};
	ClerkPageFacts lf = *args->facts;
	ClerkPageCounts *counts = args->counts;
	ClerkPageFacts *facts = args->facts;
	ClerkPageWrite	a = *args;
	ErrorData  *edata;

	lf.ids = NIL;
	a.counts = &local;
	a.facts = &lf;
	edata = clerk_try(fn, &a);

	if (edata == NULL)
	{
		counts->inserted += local.inserted;
		counts->updated += local.updated;
		counts->unchanged += local.unchanged;
		facts->max_updated_ms = lf.max_updated_ms;
		facts->min_updated_ms = lf.min_updated_ms;
		facts->min_created_ms = lf.min_created_ms;
		facts->max_created_ms = lf.max_created_ms;
		facts->ids = list_concat(facts->ids, lf.ids);
	}
	return edata;
}
