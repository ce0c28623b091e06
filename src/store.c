/*
 * store.c
 *		The one write path from Clerk JSON to the clerk.* tables.
 *
 * A page of Clerk objects goes to Postgres as one jsonb parameter of a
 * saved plan: the mapping functions (clerk.map_*) turn it into rows, rows
 * identical to what is stored are filtered out before the upsert (so an
 * unchanged object writes nothing at all, not even a row lock), and the
 * rest is inserted or updated with INSERT ... ON CONFLICT.  When a page
 * fails as a whole, each object is retried alone so that one bad record
 * does not cost the others.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "store.h"

typedef struct EntityInfo
{
	const char *name;
	const char *table;
	const char *map;
	const char *columns;		/* every column but id, in table order */
} EntityInfo;

static const EntityInfo entities[CLERK_NENTITIES] = {
	{"users", "clerk.users", "clerk.map_users",
		"external_id, username, first_name, last_name, primary_email, email_addresses, "
		"primary_phone, image_url, banned, locked, public_metadata, private_metadata, "
		"unsafe_metadata, last_sign_in_at, last_active_at, created_at, updated_at, raw, "
	"synced_at, deleted_at"},
	{"organizations", "clerk.organizations", "clerk.map_organizations",
		"name, slug, image_url, members_count, max_allowed_memberships, "
		"admin_delete_enabled, created_by, public_metadata, private_metadata, created_at, "
	"updated_at, raw, synced_at, deleted_at"},
	{"memberships", "clerk.organization_members", "clerk.map_memberships",
		"organization_id, user_id, role, role_name, permissions, public_metadata, "
	"private_metadata, created_at, updated_at, raw, synced_at, deleted_at"},
};

/* Saved plans, made on first use and kept for the life of the process. */
static SPIPlanPtr upsert_plans[CLERK_NENTITIES];
static SPIPlanPtr classify_plans[CLERK_NENTITIES];
static SPIPlanPtr seen_plan;
static SPIPlanPtr audit_plan;
static SPIPlanPtr elements_plan;

const char *
clerk_entity_name(ClerkEntity entity)
{
	return entities[entity].name;
}

bool
clerk_entity_by_name(const char *name, ClerkEntity *entity)
{
	int			e;

	for (e = 0; e < CLERK_NENTITIES; e++)
		if (strcmp(entities[e].name, name) == 0)
		{
			*entity = (ClerkEntity) e;
			return true;
		}
	return false;
}

const char *
clerk_entity_table(ClerkEntity entity)
{
	return entities[entity].table;
}

SPIPlanPtr
clerk_prepare_saved(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* "a, b" -> "EXCLUDED.a, EXCLUDED.b" */
static char *
excluded_list(const char *columns)
{
	StringInfoData buf;
	char	   *copy = pstrdup(columns);
	char	   *tok;
	char	   *save;

	initStringInfo(&buf);
	for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save))
		appendStringInfo(&buf, "%sEXCLUDED.%s", buf.len > 0 ? ", " : "", tok);
	return buf.data;
}

/*
 * The upsert: rows that differ from the stored ones (or revive a deleted
 * one) are written; the result is one row (inserted, updated).
 */
static SPIPlanPtr
upsert_plan(ClerkEntity e)
{
	if (upsert_plans[e] == NULL)
	{
		const EntityInfo *ei = &entities[e];
		Oid			types[1] = {JSONBOID};
		char	   *sql;

		sql = psprintf("WITH m AS (SELECT * FROM %s($1)), "
					   "w AS (INSERT INTO %s AS t "
					   "  SELECT m.* FROM m WHERE NOT EXISTS "
					   "    (SELECT 1 FROM %s s WHERE s.id = m.id AND s.raw = m.raw AND s.deleted_at IS NULL) "
					   "  ON CONFLICT (id) DO UPDATE SET (%s) = ROW(%s) "
					   "  WHERE t.raw IS DISTINCT FROM EXCLUDED.raw OR t.deleted_at IS NOT NULL "
					   "  RETURNING (t.xmax = 0) AS inserted) "
					   "SELECT (SELECT count(*) FROM m), "
					   "  count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w",
					   ei->map, ei->table, ei->table, ei->columns, excluded_list(ei->columns));
		upsert_plans[e] = clerk_prepare_saved(sql, 1, types);
	}
	return upsert_plans[e];
}

/* The dry run's question: what would the upsert do? Same result shape. */
static SPIPlanPtr
classify_plan(ClerkEntity e)
{
	if (classify_plans[e] == NULL)
	{
		const EntityInfo *ei = &entities[e];
		Oid			types[1] = {JSONBOID};
		char	   *sql;

		sql = psprintf("SELECT count(*), count(*) FILTER (WHERE t.id IS NULL), "
					   "  count(*) FILTER (WHERE t.id IS NOT NULL AND "
					   "    (t.raw IS DISTINCT FROM m.raw OR t.deleted_at IS NOT NULL)) "
					   "FROM %s($1) m LEFT JOIN %s t ON t.id = m.id",
					   ei->map, ei->table);
		classify_plans[e] = clerk_prepare_saved(sql, 1, types);
	}
	return classify_plans[e];
}

void
clerk_audit(const char *action, const char *entity_type, const char *entity_id,
			const char *organization_id, int64 run_id, const char *details_json)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (audit_plan == NULL)
	{
		Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};

		audit_plan = clerk_prepare_saved("INSERT INTO clerk.audit_logs "
								   "(actor, action, entity_type, entity_id, organization_id, run_id, details) "
								   "VALUES (session_user, $1, $2, $3, $4, $5, coalesce($6::jsonb, '{}'))",
								   6, types);
	}
	values[0] = CStringGetTextDatum(action);
#define OPT_TEXT(i, v) do { if ((v) != NULL) values[i] = CStringGetTextDatum(v); else nulls[i] = 'n'; } while (0)
	OPT_TEXT(1, entity_type);
	OPT_TEXT(2, entity_id);
	OPT_TEXT(3, organization_id);
	if (run_id > 0)
		values[4] = Int64GetDatum(run_id);
	else
		nulls[4] = 'n';
	OPT_TEXT(5, details_json);
#undef OPT_TEXT
	if (SPI_execute_plan(audit_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write clerk.audit_logs");
}

static void
record_seen(ClerkEntity e, Jsonb *page)
{
	Datum		values[2];

	if (seen_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, JSONBOID};

		/* one row per page: the cheapest record that still costs no memory */
		seen_plan = clerk_prepare_saved("INSERT INTO pg_temp.clerk_seen (entity, ids) "
								  "SELECT $1, array_agg(o ->> 'id') FROM clerk.objects($2) o "
								  "WHERE o ->> 'id' IS NOT NULL",
								  2, types);
	}
	values[0] = CStringGetTextDatum(entities[e].name);
	values[1] = JsonbPGetDatum(page);
	if (SPI_execute_plan(seen_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the ids seen");
}

/* Run the upsert or classify plan on `page` and add its result to counts. */
static void
apply_plan(SPIPlanPtr plan, Jsonb *page, ClerkPageCounts *counts)
{
	Datum		value = JsonbPGetDatum(page);
	bool		isnull;
	int64		n,
				ins,
				upd;

	if (SPI_execute_plan(plan, &value, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "clerk_sync upsert returned no result");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ins = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	upd = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	counts->inserted += ins;
	counts->updated += upd;
	counts->unchanged += n - ins - upd;
}

/*
 * Try `page` in a subtransaction.  Returns NULL on success, else the
 * error (copied into `mcxt`); cancel and shutdown are rethrown.
 */
static ErrorData *
try_plan(SPIPlanPtr plan, Jsonb *page, ClerkPageCounts *counts, MemoryContext mcxt)
{
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	ClerkPageCounts local = {0};

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		apply_plan(plan, page, &local);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		counts->inserted += local.inserted;
		counts->updated += local.updated;
		counts->unchanged += local.unchanged;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/* The objects of a page, one Jsonb each, in `mcxt`. */
static List *
page_elements(Jsonb *page, MemoryContext mcxt)
{
	Datum		value = JsonbPGetDatum(page);
	List	   *result = NIL;
	uint64		i;

	if (elements_plan == NULL)
	{
		Oid			types[1] = {JSONBOID};

		elements_plan = clerk_prepare_saved("SELECT o FROM clerk.objects($1) o", 1, types);
	}
	if (SPI_execute_plan(elements_plan, &value, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not split a page into objects");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		result = lappend(result, DatumGetJsonbPCopy(d));
		MemoryContextSwitchTo(old);
	}
	return result;
}

/* The "id" member of an object, or NULL. */
static char *
object_id(Jsonb *obj)
{
	JsonbValue	v;

	if (!JB_ROOT_IS_OBJECT(obj) ||
		getKeyJsonValueFromContainer(&obj->root, "id", 2, &v) == NULL ||
		v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Objects a successful plan saw: what it inserted, updated or left alone. */
static int64
counts_total(ClerkPageCounts *now, ClerkPageCounts *before)
{
	return (now->inserted - before->inserted) + (now->updated - before->updated) +
		(now->unchanged - before->unchanged);
}

void
clerk_store_page(ClerkEntity entity, Jsonb *page, bool dry_run, bool track_seen,
				 int64 run_id, ClerkPageCounts *counts)
{
	MemoryContext mcxt = CurrentMemoryContext;
	SPIPlanPtr	plan;
	ErrorData  *edata;
	ListCell   *lc;
	List	   *objects;

	ClerkPageCounts before = *counts;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(mcxt);

	plan = dry_run ? classify_plan(entity) : upsert_plan(entity);
	if (track_seen)
		record_seen(entity, page);

	edata = try_plan(plan, page, counts, mcxt);
	if (edata == NULL)
		counts->fetched += counts_total(counts, &before);
	else
	{
		/* the page failed as a whole: store what can be stored, one by one */
		objects = page_elements(page, mcxt);
		counts->fetched += list_length(objects);
		foreach(lc, objects)
		{
			Jsonb	   *obj = (Jsonb *) lfirst(lc);
			ErrorData  *rec = try_plan(plan, obj, counts, mcxt);

			if (rec != NULL)
			{
				StringInfoData details;
				char	   *id = object_id(obj);

				counts->failed++;
				initStringInfo(&details);
				appendStringInfoString(&details, "{\"reason\": ");
				escape_json(&details, rec->message);
				appendStringInfoString(&details, ", \"sqlstate\": ");
				escape_json(&details, unpack_sql_state(rec->sqlerrcode));
				appendStringInfo(&details, ", \"dry_run\": %s}", dry_run ? "true" : "false");
				clerk_audit("sync.record_failed", entities[entity].name, id, NULL,
							run_id, details.data);
				FreeErrorData(rec);
			}
		}
		FreeErrorData(edata);
	}
	SPI_finish();
	MemoryContextSwitchTo(mcxt);
}


/* ---------------------------------------------------------------------
 * Single events (webhooks)
 *
 * An event carries one object as it was at some moment; events can arrive
 * late, twice, or out of order.  They go through the same mapping and
 * column list as a page, with two more rules: an object never replaces a
 * stored row whose updated_at is later, and a soft-deleted row stays
 * deleted.  A deletion of an object not stored yet leaves a deleted row
 * behind (a tombstone) so that the rule also holds for a create or update
 * that arrives after it.
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr event_plans[CLERK_NENTITIES];
static SPIPlanPtr event_classify_plans[CLERK_NENTITIES];
static SPIPlanPtr delete_plans[CLERK_NENTITIES];
static SPIPlanPtr cascade_plans[CLERK_NENTITIES];

static const char *const event_outcome_names[] = {
	"inserted", "updated", "unchanged", "stale", "gone", "deleted", "tombstone"
};

const char *
clerk_event_outcome_name(ClerkEventOutcome outcome)
{
	return event_outcome_names[outcome];
}

/*
 * The upsert of one event: like upsert_plan(), but the update (and the
 * pre-filter that spares unchanged rows a lock) also requires the stored
 * row to be live and not newer.  Returns zero rows or one (inserted).
 */
static SPIPlanPtr
event_plan(ClerkEntity e)
{
	if (event_plans[e] == NULL)
	{
		const EntityInfo *ei = &entities[e];
		Oid			types[1] = {JSONBOID};
		char	   *sql;

		sql = psprintf("WITH m AS (SELECT * FROM %s(pg_catalog.jsonb_build_array($1))) "
					   "INSERT INTO %s AS t "
					   "SELECT m.* FROM m WHERE NOT EXISTS "
					   "  (SELECT 1 FROM %s s WHERE s.id = m.id AND "
					   "     (s.deleted_at IS NOT NULL OR s.raw = m.raw OR s.updated_at > m.updated_at)) "
					   "ON CONFLICT (id) DO UPDATE SET (%s) = ROW(%s) "
					   "WHERE t.deleted_at IS NULL "
					   "  AND (t.updated_at IS NULL OR t.updated_at <= EXCLUDED.updated_at) "
					   "  AND t.raw IS DISTINCT FROM EXCLUDED.raw "
					   "RETURNING (t.xmax = 0) AS inserted",
					   ei->map, ei->table, ei->table, ei->columns, excluded_list(ei->columns));
		event_plans[e] = clerk_prepare_saved(sql, 1, types);
	}
	return event_plans[e];
}

/* Why an event wrote nothing: "gone", "unchanged" or "stale". */
static SPIPlanPtr
event_classify_plan(ClerkEntity e)
{
	if (event_classify_plans[e] == NULL)
	{
		const EntityInfo *ei = &entities[e];
		Oid			types[1] = {JSONBOID};
		char	   *sql;

		sql = psprintf("SELECT CASE WHEN s.deleted_at IS NOT NULL THEN 'gone' "
					   "  WHEN s.raw = m.raw THEN 'unchanged' ELSE 'stale' END "
					   "FROM %s(pg_catalog.jsonb_build_array($1)) m JOIN %s s ON s.id = m.id",
					   ei->map, ei->table);
		event_classify_plans[e] = clerk_prepare_saved(sql, 1, types);
	}
	return event_classify_plans[e];
}

/*
 * The deletion of one object: mark a live row deleted, or insert the
 * mapped object as a deleted row when there is none.  The column list is
 * the upsert's, with deleted_at taken from $2.  Returns zero rows (the row
 * was deleted already) or one (inserted).
 */
static SPIPlanPtr
delete_plan(ClerkEntity e)
{
	if (delete_plans[e] == NULL)
	{
		const EntityInfo *ei = &entities[e];
		Oid			types[2] = {JSONBOID, TIMESTAMPTZOID};
		StringInfoData select;
		char	   *copy = pstrdup(ei->columns);
		char	   *tok;
		char	   *save;
		char	   *sql;

		initStringInfo(&select);
		appendStringInfoString(&select, "m.id");
		for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save))
		{
			if (strcmp(tok, "deleted_at") == 0)
				appendStringInfoString(&select, ", $2");
			else
				appendStringInfo(&select, ", m.%s", tok);
		}
		sql = psprintf("INSERT INTO %s AS t (id, %s) "
					   "SELECT %s FROM %s(pg_catalog.jsonb_build_array($1)) m "
					   "ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at "
					   "WHERE t.deleted_at IS NULL "
					   "RETURNING (t.xmax = 0) AS inserted",
					   ei->table, ei->columns, select.data, ei->map);
		delete_plans[e] = clerk_prepare_saved(sql, 2, types);
	}
	return delete_plans[e];
}

/* The live memberships of a deleted user or organization, soft-deleted. */
static SPIPlanPtr
cascade_plan(ClerkEntity e)
{
	if (cascade_plans[e] == NULL)
	{
		Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
		char	   *sql;

		sql = psprintf("UPDATE %s SET deleted_at = $2 WHERE %s = $1 AND deleted_at IS NULL",
					   entities[CLERK_MEMBERSHIPS].table,
					   e == CLERK_USERS ? "user_id" : "organization_id");
		cascade_plans[e] = clerk_prepare_saved(sql, 2, types);
	}
	return cascade_plans[e];
}

/* Whether the one row an INSERT ... RETURNING (t.xmax = 0) gave was inserted. */
static bool
returned_inserted(void)
{
	bool		isnull;

	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

ClerkEventOutcome
clerk_store_event(ClerkEntity entity, Jsonb *obj)
{
	Datum		value = JsonbPGetDatum(obj);
	ClerkEventOutcome outcome;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (SPI_execute_plan(event_plan(entity), &value, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "clerk_sync event upsert failed");
	if (SPI_processed == 1)
		outcome = returned_inserted() ? CLERK_EVENT_INSERTED : CLERK_EVENT_UPDATED;
	else
	{
		char	   *why = NULL;

		/* nothing written: say why (the row may have changed since, so this is a report only) */
		if (SPI_execute_plan(event_classify_plan(entity), &value, NULL, false, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			why = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (why != NULL && strcmp(why, "gone") == 0)
			outcome = CLERK_EVENT_GONE;
		else if (why != NULL && strcmp(why, "unchanged") == 0)
			outcome = CLERK_EVENT_UNCHANGED;
		else
			outcome = CLERK_EVENT_STALE;
	}
	SPI_finish();
	return outcome;
}

ClerkEventOutcome
clerk_store_delete(ClerkEntity entity, Jsonb *obj, TimestampTz deleted_at, int64 *cascaded)
{
	Datum		values[2];
	ClerkEventOutcome outcome;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[0] = JsonbPGetDatum(obj);
	values[1] = TimestampTzGetDatum(deleted_at);
	if (SPI_execute_plan(delete_plan(entity), values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "clerk_sync soft delete failed");
	if (SPI_processed == 1)
		outcome = returned_inserted() ? CLERK_EVENT_TOMBSTONE : CLERK_EVENT_DELETED;
	else
		outcome = CLERK_EVENT_GONE;

	if (cascaded != NULL)
		*cascaded = 0;
	if (entity == CLERK_USERS || entity == CLERK_ORGANIZATIONS)
	{
		char	   *id = object_id(obj);

		if (id != NULL)
		{
			values[0] = CStringGetTextDatum(id);
			if (SPI_execute_plan(cascade_plan(entity), values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "clerk_sync could not soft-delete memberships");
			if (cascaded != NULL)
				*cascaded = (int64) SPI_processed;
		}
	}
	SPI_finish();
	return outcome;
}
