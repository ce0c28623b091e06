/*
 * page_bulk.c
 *		A page written as COPY writes: unchanged objects left out before mapping, new rows bulk-inserted.
 *
 * For an entity whose objects map one to a row of the same id, and a table
 * that lets bulk_insert.c write it: one index probe reads the stored rows
 * of the page's ids, and an object whose live row holds its very bytes in
 * raw is unchanged (a row's raw is its object); the rest is mapped
 * (clerk.map_*) in one statement that says of each row whether its id is
 * stored and whether the ordering rule lets it be written over; new rows
 * go in with clerk_bulk_insert(), stored ones to write over take the page
 * plan on their objects alone.  The facts, the ids seen and the counts come
 * from the rows, as the page plan returns them.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "clerk/json_members.h"
#include "store/bulk_insert.h"
#include "store/page_bulk.h"
#include "store/page_plan.h"

/*
 * The bulk path's statement: the mapped rows of the page $1, each with
 * whether its id is stored and whether the stored row is to be written over
 * ($2 as in the page plan); when none of the page's ids is stored, without
 * the join.
 */
static SPIPlanPtr rows_plans[CLERK_NENTITIES][2];

static SPIPlanPtr
rows_plan(ClerkEntity e, bool any_stored)
{
	if (rows_plans[e][any_stored] == NULL)
	{
		const ClerkEntityInfo *ei = &clerk_entities[e];
		Oid			types[2] = {JSONBOID, TIMESTAMPTZOID};

		rows_plans[e][any_stored] =
			clerk_prepare_saved(any_stored ?
								psprintf("SELECT m.*, s.id IS NOT NULL, "
										 "s.id IS NOT NULL AND NOT coalesce(" CLERK_KEEP_STORED ", false) "
										 "FROM %s m LEFT JOIN %s s ON s.id = m.id",
										 clerk_mapped_sql(ei, "$1"), ei->table) :
								psprintf("SELECT m.*, false, false FROM %s m", clerk_mapped_sql(ei, "$1")),
								2, types);
	}
	return rows_plans[e][any_stored];
}

/* timestamptz as Unix milliseconds, rounded as (extract(epoch FROM t) * 1000)::int8 rounds */
static int64
unix_ms(TimestampTz t)
{
	int64		us;

	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	us = t + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	return us >= 0 ? (us + 500) / 1000 : -((-us + 500) / 1000);
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The objects of page whose id is one of ids (sorted here). */
static Jsonb *
objects_with_ids(Jsonb *page, char **ids, int nids)
{
	JsonbParseState *state = NULL;
	int			n = JsonContainerSize(&page->root);

	if (nids == n)
		return page;
	qsort(ids, nids, sizeof(char *), compare_strings);
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *o = getIthJsonbValueFromContainer(&page->root, i);
		char	   *id = o->type == jbvBinary ? clerk_json_string(o->val.binary.data, "id") : NULL;

		if (id != NULL && bsearch(&id, ids, nids, sizeof(char *), compare_strings) != NULL)
			(void) pushJsonbValue(&state, WJB_ELEM, o);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

/* The ids a page listed, into the run's pg_temp.clerk_seen. */
static void
record_seen_ids(ClerkEntity e, Datum *ids, int nids)
{
	static SPIPlanPtr plan;
	Datum		values[2];

	if (plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTARRAYOID};

		plan = clerk_prepare_saved("INSERT INTO pg_temp.clerk_seen (entity, ids) VALUES ($1, $2)", 2, types);
	}
	values[0] = CStringGetTextDatum(clerk_entities[e].name);
	values[1] = PointerGetDatum(construct_array(ids, nids, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the ids seen");
}

/* What the bulk path notes of a page's rows: their times and ids. */
typedef struct RowFacts
{
	int64		max_u,
				min_u,
				min_c,
				max_c;
	Datum	   *ids;
	int			nids;
} RowFacts;

static void
note_row(RowFacts *rf, HeapTuple tup, TupleDesc desc, int id_col, int upd_col, int cre_col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, id_col, &isnull);

	if (!isnull)
		rf->ids[rf->nids++] = d;
	d = SPI_getbinval(tup, desc, upd_col, &isnull);
	if (!isnull)
	{
		int64		ms = unix_ms(DatumGetTimestampTz(d));

		rf->max_u = Max(rf->max_u, ms);
		rf->min_u = rf->min_u < 0 ? ms : Min(rf->min_u, ms);
	}
	d = SPI_getbinval(tup, desc, cre_col, &isnull);
	if (!isnull)
	{
		int64		ms = unix_ms(DatumGetTimestampTz(d));

		rf->max_c = Max(rf->max_c, ms);
		rf->min_c = rf->min_c < 0 ? ms : Min(rf->min_c, ms);
	}
}

/* The column numbers of id, updated_at and created_at in desc. */
static void
fact_columns(TupleDesc desc, ClerkEntity e, int *id_col, int *upd_col, int *cre_col)
{
	*id_col = SPI_fnumber(desc, "id");
	*upd_col = SPI_fnumber(desc, "updated_at");
	*cre_col = SPI_fnumber(desc, "created_at");
	if (*id_col <= 0 || *upd_col <= 0 || *cre_col <= 0)
		elog(ERROR, "the rows of %s lack id, updated_at or created_at", clerk_entities[e].name);
}

/* The live stored rows of ids $1, for leave_out_unchanged(). */
static SPIPlanPtr stored_plans[CLERK_NENTITIES];

static SPIPlanPtr
stored_plan(ClerkEntity e)
{
	if (stored_plans[e] == NULL)
	{
		Oid			types[1] = {TEXTARRAYOID};

		stored_plans[e] = clerk_prepare_saved(psprintf("SELECT id, raw, updated_at, created_at FROM %s "
													   "WHERE id = ANY ($1) AND deleted_at IS NULL",
													   clerk_entities[e].table),
											  1, types);
	}
	return stored_plans[e];
}

typedef struct StoredRow
{
	char	   *id;
	HeapTuple	tup;
} StoredRow;

static int
compare_stored(const void *a, const void *b)
{
	return strcmp(((const StoredRow *) a)->id, ((const StoredRow *) b)->id);
}

/*
 * The objects of the page that need mapping.  A row is mapped from its
 * object with the object itself as raw, so an object whose stored row is
 * live and holds its very bytes in raw is unchanged: it is counted and
 * noted here and left out, at the cost of one index probe for the page.
 * Returns the page, the objects left (a new array), or NULL for none;
 * *any_stored says whether any of the page's ids is stored.  An object
 * without a string id is an ERROR: the caller then writes the page with
 * the page plan.
 */
static Jsonb *
leave_out_unchanged(ClerkPageWrite *a, RowFacts *rf, int *unchanged, bool *any_stored)
{
	JsonbContainer *list = &a->page->root;
	int			n = JsonContainerSize(list);
	JsonbValue **objs = palloc(sizeof(JsonbValue *) * (n + 1));
	char	  **ids = palloc(sizeof(char *) * (n + 1));
	Datum	   *probe = palloc(sizeof(Datum) * (n + 1));
	bool	   *same = palloc0(sizeof(bool) * (n + 1));
	StoredRow  *stored;
	int			nprobe = 0,
				nstored,
				nsame = 0,
				id_col,
				upd_col,
				cre_col;
	Datum		arg;
	JsonbParseState *state = NULL;

	for (int i = 0; i < n; i++)
	{
		objs[i] = getIthJsonbValueFromContainer(list, i);
		ids[i] = objs[i]->type == jbvBinary ? clerk_json_string(objs[i]->val.binary.data, "id") : NULL;
		if (ids[i] != NULL)
			probe[nprobe++] = CStringGetTextDatum(ids[i]);
	}
	/* (the path finds rows by the objects' ids: a page with an object without one is the page plan's) */
	if (nprobe < n)
		elog(ERROR, "an object of the page has no string id");
	if (nprobe == 0)
		return a->page;
	arg = PointerGetDatum(construct_array(probe, nprobe, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_plan(stored_plan(a->entity), &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the stored %s", clerk_entities[a->entity].name);
	*any_stored = SPI_processed > 0;
	if (SPI_processed == 0)
		return a->page;
	fact_columns(SPI_tuptable->tupdesc, a->entity, &id_col, &upd_col, &cre_col);
	nstored = (int) SPI_processed;
	stored = palloc(sizeof(StoredRow) * nstored);
	for (int i = 0; i < nstored; i++)
	{
		stored[i].tup = SPI_tuptable->vals[i];
		stored[i].id = SPI_getvalue(stored[i].tup, SPI_tuptable->tupdesc, id_col);
	}
	qsort(stored, nstored, sizeof(StoredRow), compare_stored);

	for (int i = 0; i < n; i++)
	{
		StoredRow	key;
		StoredRow  *row;
		Jsonb	   *raw;
		bool		isnull;

		key.id = ids[i];
		if ((row = bsearch(&key, stored, nstored, sizeof(StoredRow), compare_stored)) == NULL)
			continue;
		raw = DatumGetJsonbP(SPI_getbinval(row->tup, SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || (int) (VARSIZE(raw) - VARHDRSZ) != objs[i]->val.binary.len ||
			memcmp(&raw->root, objs[i]->val.binary.data, objs[i]->val.binary.len) != 0)
			continue;
		same[i] = true;
		nsame++;
		note_row(rf, row->tup, SPI_tuptable->tupdesc, id_col, upd_col, cre_col);
	}
	*unchanged += nsame;
	if (nsame == 0)
		return a->page;
	if (nsame == n)
		return NULL;
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		if (!same[i])
			(void) pushJsonbValue(&state, WJB_ELEM, objs[i]);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

/*
 * The bulk path.  Unchanged objects are left out before they are mapped
 * (leave_out_unchanged); the rest are mapped (rows_plan) and read here:
 * rows whose id is not stored go in with clerk_bulk_insert(), stored ones
 * to write over take the page plan on their objects alone.  The facts, the
 * ids seen and the counts come from the rows.
 */
void
clerk_page_bulk_write(void *varg)
{
	ClerkPageWrite *a = (ClerkPageWrite *) varg;
	int			nobj = JsonContainerSize(&a->page->root);
	RowFacts	rf = {-1, -1, -1, -1, NULL, 0};
	int			unchanged = 0;
	bool		any_stored = false;
	Jsonb	   *page;

	rf.ids = palloc(sizeof(Datum) * (nobj + 1));
	page = leave_out_unchanged(a, &rf, &unchanged, &any_stored);
	if (page != NULL)
	{
		Datum		values[2] = {JsonbPGetDatum(page), TimestampTzGetDatum(a->fetched_at)};
		SPITupleTable *rows;
		TupleDesc	desc;
		int			n,
					id_col,
					upd_col,
					cre_col,
					nfresh = 0,
					nchanged = 0;
		HeapTuple  *fresh;
		char	  **changed;

		if (SPI_execute_plan(rows_plan(a->entity, any_stored), values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not map a page of %s", clerk_entities[a->entity].name);
		rows = SPI_tuptable;
		n = (int) SPI_processed;
		desc = rows->tupdesc;
		fact_columns(desc, a->entity, &id_col, &upd_col, &cre_col);
		fresh = palloc(sizeof(HeapTuple) * (n + 1));
		changed = palloc(sizeof(char *) * (n + 1));
		if (rf.nids + n > nobj)
			rf.ids = repalloc(rf.ids, sizeof(Datum) * (rf.nids + n + 1));
		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = rows->vals[i];
			bool		isnull;

			note_row(&rf, tup, desc, id_col, upd_col, cre_col);
			/* the last two columns: stored, and to be written over */
			if (DatumGetBool(SPI_getbinval(tup, desc, desc->natts, &isnull)))
				changed[nchanged++] = SPI_getvalue(tup, desc, id_col);
			else if (!DatumGetBool(SPI_getbinval(tup, desc, desc->natts - 1, &isnull)))
				fresh[nfresh++] = tup;
		}
		if (nfresh > 0)
			a->counts->inserted += clerk_bulk_insert(a->relid, fresh, nfresh, desc);
		if (nchanged > 0)
		{
			ClerkPageFacts none = {.want_ids = false};
			ClerkPageWrite	sub = *a;

			sub.plan = clerk_page_plan(a->entity, false, false);
			sub.page = objects_with_ids(page, changed, nchanged);
			sub.facts = &none;
			clerk_page_plan_write(&sub);
		}
		unchanged += n - nfresh - nchanged;
	}
	a->counts->unchanged += unchanged;
	clerk_merge_facts(a->facts, rf.max_u, rf.min_u, rf.min_c, rf.max_c);
	if (a->track_seen && rf.nids > 0)
		record_seen_ids(a->entity, rf.ids, rf.nids);
	if (a->facts->want_ids)
	{
		MemoryContext old = MemoryContextSwitchTo(a->mcxt);

		for (int i = 0; i < rf.nids; i++)
			a->facts->ids = lappend(a->facts->ids, TextDatumGetCString(rf.ids[i]));
		MemoryContextSwitchTo(old);
	}
}
