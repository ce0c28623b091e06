/*
 * store.c
 *		The one write path from Clerk JSON to the clerk.* tables.
 *
 * A page of Clerk objects (parsed and repaired by parse.c) is written by
 * the bulk path (page_bulk.c: unchanged objects left out before mapping,
 * new rows in as COPY stores them) where the entity and its table allow
 * it, else by the page plan (page_plan.c: one statement that maps,
 * records the ids and upserts).  When the bulk path fails, the page plan
 * takes the page; when that fails, each object is tried alone, so that one
 * bad record does not cost the others.  Also the single events of webhooks
 * and write-back answers, the cascade of deletions, and the bookkeeping
 * (audit rows, failed records, pruning).
 *
 * The ordering rule, the same for every writer: an object never replaces
 * a stored row whose updated_at is later, and a page never revives a row
 * deleted at or after the time the page was fetched.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "base/subtransaction.h"
#include "clerk/json_members.h"
#include "clerk/parse.h"
#include "store/bulk_insert.h"
#include "store/page_bulk.h"
#include "store/page_plan.h"
#include "store/store.h"

/* What goes when an object is deleted: clerk_store_cascade(). */
typedef struct Cascade
{
	ClerkEntity parent;
	ClerkEntity child;
	const char *column;			/* the child's column holding the parent's id */
} Cascade;

static const Cascade cascades[] = {
	{CLERK_ORGANIZATIONS, CLERK_MEMBERSHIPS, "organization_id"},
	{CLERK_ORGANIZATIONS, CLERK_ORG_INVITATIONS, "organization_id"},
	{CLERK_ORGANIZATIONS, CLERK_ORG_DOMAINS, "organization_id"},
	{CLERK_USERS, CLERK_MEMBERSHIPS, "user_id"},
	{CLERK_USERS, CLERK_SESSIONS, "user_id"},
	{CLERK_STATEMENTS, CLERK_PAYMENT_ATTEMPTS, "statement_id"},
};

/* Saved plans, made on first use and kept for the life of the process. */
static SPIPlanPtr seen_plan;
static SPIPlanPtr audit_plan;
static SPIPlanPtr failure_plan;
static SPIPlanPtr forget_plan;

/* A text parameter of a plan, or NULL (SPI's 'n'). */
static void
optional_text(Datum *value, char *null, const char *v)
{
	if (v != NULL)
		*value = CStringGetTextDatum(v);
	else
		*null = 'n';
}

void
clerk_audit(const char *actor, const char *action, const char *entity_type, const char *entity_id,
			const char *organization_id, int64 run_id, const char *details_json)
{
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

	if (audit_plan == NULL)
	{
		Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};

		audit_plan = clerk_prepare_saved("INSERT INTO clerk.audit_logs "
								   "(actor, action, entity_type, entity_id, organization_id, run_id, details) "
								   "VALUES (coalesce($1, session_user), $2, $3, $4, $5, $6, coalesce($7::jsonb, '{}'))",
								   7, types);
	}
	optional_text(&values[0], &nulls[0], actor);
	values[1] = CStringGetTextDatum(action);
	optional_text(&values[2], &nulls[2], entity_type);
	optional_text(&values[3], &nulls[3], entity_id);
	optional_text(&values[4], &nulls[4], organization_id);
	if (run_id > 0)
		values[5] = Int64GetDatum(run_id);
	else
		nulls[5] = 'n';
	optional_text(&values[6], &nulls[6], details_json);
	if (SPI_execute_plan(audit_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write clerk.audit_logs");
}

/* The ids of a page that failed as a whole (its objects are then stored one by one). */
static void
record_seen(ClerkEntity e, Jsonb *page)
{
	Datum		values[2];

	if (seen_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, JSONBOID};

		seen_plan = clerk_prepare_saved("INSERT INTO pg_temp.clerk_seen (entity, ids) "
								  "SELECT $1, array_agg(o ->> 'id') FROM clerk.objects($2) o "
								  "WHERE o ->> 'id' IS NOT NULL",
								  2, types);
	}
	values[0] = CStringGetTextDatum(clerk_entities[e].name);
	values[1] = JsonbPGetDatum(page);
	if (SPI_execute_plan(seen_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the ids seen");
}

/* Remember (or count once more) an object that could not be stored. */
static void
record_failure(ClerkEntity e, const char *id, const char *reason, int sqlerrcode, int64 run_id)
{
	Datum		values[5];

	if (failure_plan == NULL)
	{
		Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID};

		failure_plan = clerk_prepare_saved("INSERT INTO clerk.sync_failures AS f "
										   "(entity, id, reason, sqlstate, last_run_id) "
										   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (entity, id) DO UPDATE "
										   "SET attempts = f.attempts + 1, reason = EXCLUDED.reason, "
										   "sqlstate = EXCLUDED.sqlstate, last_failed_at = clock_timestamp(), "
										   "last_run_id = EXCLUDED.last_run_id",
										   5, types);
	}
	values[0] = CStringGetTextDatum(clerk_entities[e].name);
	values[1] = CStringGetTextDatum(id);
	values[2] = CStringGetTextDatum(reason);
	values[3] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
	values[4] = Int64GetDatum(run_id);
	if (SPI_execute_plan(failure_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a failed record");
}

/* An object that failed: counted, audited, and (in a run) remembered for a retry. */
static void
object_failed(ClerkEntity e, const char *id, const char *reason, int sqlerrcode,
			  bool dry_run, int64 run_id, ClerkPageCounts *counts)
{
	StringInfoData details;

	counts->failed++;
	initStringInfo(&details);
	appendStringInfoString(&details, "{\"reason\": ");
	escape_json(&details, reason);
	appendStringInfoString(&details, ", \"sqlstate\": ");
	escape_json(&details, unpack_sql_state(sqlerrcode));
	appendStringInfo(&details, ", \"dry_run\": %s}", dry_run ? "true" : "false");
	clerk_audit(NULL, "sync.record_failed", clerk_entities[e].name, id, NULL, run_id, details.data);
	if (!dry_run && run_id > 0 && id != NULL)
		record_failure(e, id, reason, sqlerrcode, run_id);
}

void
clerk_store_forget_failure(ClerkEntity entity, const char *id)
{
	Datum		values[2];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (forget_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		forget_plan = clerk_prepare_saved("DELETE FROM clerk.sync_failures WHERE entity = $1 AND id = $2",
										  2, types);
	}
	values[0] = CStringGetTextDatum(clerk_entities[entity].name);
	values[1] = CStringGetTextDatum(id);
	if (SPI_execute_plan(forget_plan, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget a failed record");
	SPI_finish();
}

/* Objects a successful plan saw: what it inserted, updated or left alone. */
static int64
counts_total(ClerkPageCounts *now, ClerkPageCounts *before)
{
	return (now->inserted - before->inserted) + (now->updated - before->updated) +
		(now->unchanged - before->unchanged);
}

/* audit rows of the vault: kept under clerk_sync.credential_audit_retention */
#define CREDENTIAL_AUDIT "action LIKE 'credentials.%%' OR action LIKE 'encryption_key.%%' OR coalesce(entity_type, '') = 'secret'"

void
clerk_store_prune_sessions(int retention_min)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(retention_min)};

	if (retention_min <= 0)
		return;
	if (SPI_execute_with_args("DELETE FROM clerk.sessions WHERE id IN "
							  "(SELECT id FROM clerk.sessions WHERE coalesce(ended_at, "
							  "  greatest(last_active_at, updated_at, created_at, synced_at)) "
							  "  < now() - $1 * interval '1 minute' LIMIT " CppAsString2(CLERK_PRUNE_BATCH) ")",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune clerk.sessions");
}

void
clerk_store_prune(int log_retention_min, int credential_audit_retention_min)
{
	if (log_retention_min > 0)
	{
		SPI_execute(psprintf("DELETE FROM clerk.sync_runs WHERE started_at < now() - interval '%d minutes'",
							 log_retention_min), false, 0);
		SPI_execute(psprintf("DELETE FROM clerk.audit_logs WHERE occurred_at < now() - interval '%d minutes' "
							 "AND NOT (" CREDENTIAL_AUDIT ")", log_retention_min), false, 0);
	}
	if (credential_audit_retention_min > 0)
		SPI_execute(psprintf("DELETE FROM clerk.audit_logs WHERE occurred_at < now() - interval '%d minutes' "
							 "AND (" CREDENTIAL_AUDIT ")", credential_audit_retention_min), false, 0);
}

int64
clerk_store_soft_delete(ClerkEntity entity, ArrayType *ids, int64 run_id)
{
	Datum		values[1];
	Oid			types[1] = {TEXTARRAYOID};
	int64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = PointerGetDatum(ids);
	if (SPI_execute_with_args(psprintf("UPDATE %s SET deleted_at = now() WHERE id = ANY ($1) "
									   "AND deleted_at IS NULL RETURNING id", clerk_entities[entity].table),
							  1, types, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not soft-delete");
	n = (int64) SPI_processed;
	for (uint64 i = 0; i < SPI_processed; i++)
		clerk_audit(NULL, "sync.soft_delete", clerk_entities[entity].name,
					SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
					NULL, run_id, "{\"reason\": \"absent from a complete listing and confirmed gone by Clerk\"}");
	/* what went with them, as a webhook's deletion takes it */
	{
		int64		cascaded[CLERK_NENTITIES] = {0};

		clerk_store_cascade(entity, ids, GetCurrentTransactionStartTimestamp(), cascaded);
		for (int e = 0; e < CLERK_NENTITIES; e++)
			if (cascaded[e] > 0)
				clerk_audit(NULL, "sync.soft_delete", clerk_entities[e].name, NULL, NULL, run_id,
							psprintf("{\"reason\": \"the %s they belong to were deleted\", \"rows\": " INT64_FORMAT "}",
									 clerk_entities[entity].name, cascaded[e]));
	}
	SPI_finish();
	return n;
}

void
clerk_store_forget_listed_failures(int64 run_id)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* listed in this run (pg_temp.clerk_seen) and not failed in it: stored */
	if (SPI_execute(psprintf("DELETE FROM clerk.sync_failures f "
							 "WHERE f.last_run_id IS DISTINCT FROM " INT64_FORMAT " AND EXISTS "
							 "(SELECT 1 FROM pg_temp.clerk_seen s WHERE s.entity = f.entity AND f.id = ANY (s.ids))",
							 run_id), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget failed records");
	SPI_finish();
}

void
clerk_store_page(ClerkEntity entity, ClerkParsed *page, bool dry_run, bool track_seen,
				 int64 run_id, TimestampTz fetched_at, ClerkPageCounts *counts,
				 ClerkPageFacts *facts)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ClerkPageFacts none = {.want_ids = false};
	ClerkPageWrite	args;
	ErrorData  *edata;
	ListCell   *lc;
	ClerkPageCounts before = *counts;
	JsonbContainer *objects = &page->objects->root;
	int			n = JsonContainerSize(objects);
	int			i;

	if (facts == NULL)
		facts = &none;
	facts->max_updated_ms = facts->min_updated_ms = -1;
	facts->min_created_ms = facts->max_created_ms = -1;
	facts->ids = NIL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(mcxt);

	/* what the answer held that is not an object, or did not convert */
	counts->fetched += list_length(page->rejects);
	foreach(lc, page->rejects)
	{
		ClerkReject *r = (ClerkReject *) lfirst(lc);

		object_failed(entity, r->id, r->reason, r->sqlerrcode, dry_run, run_id, counts);
	}
	/* what was repaired to fit */
	foreach(lc, page->repaired)
	{
		ClerkRepaired *r = (ClerkRepaired *) lfirst(lc);
		char	   *details = psprintf("{\"dry_run\": %s, %s", dry_run ? "true" : "false", r->details + 1);

		counts->repaired++;
		clerk_audit(NULL, "sync.record_repaired", clerk_entities[entity].name, r->id, NULL, run_id, details);
	}
	if (n == 0)
	{
		SPI_finish();
		MemoryContextSwitchTo(mcxt);
		return;
	}

	args = (ClerkPageWrite) {
		.plan = clerk_page_plan(entity, dry_run, track_seen), .entity = entity, .relid = InvalidOid,
		.track_seen = track_seen, .page = page->objects, .fetched_at = fetched_at,
		.counts = counts, .facts = facts, .mcxt = mcxt
	};
	/*
	 * New rows as COPY stores them, where the entity maps an object to a row
	 * of its id and the table allows it; if that fails (a row stored
	 * meanwhile, or a bad record), the page plan on the whole page.
	 */
	if (!dry_run && clerk_entities[entity].merged_objects == NULL)
		args.relid = clerk_table_oid(&clerk_entities[entity]);
	if (clerk_bulk_insert_possible(args.relid))
	{
		edata = clerk_try_page_write(clerk_page_bulk_write, &args);
		if (edata != NULL)
		{
			FreeErrorData(edata);
			edata = clerk_try_page_write(clerk_page_plan_write, &args);
		}
	}
	else
		edata = clerk_try_page_write(clerk_page_plan_write, &args);
	if (edata == NULL)
		counts->fetched += counts_total(counts, &before);
	else
	{
		/* the page failed as a whole: store what can be stored, one by one */
		args.plan = clerk_page_plan(entity, dry_run, false);
		if (track_seen)
			record_seen(entity, page->objects);
		counts->fetched += n;
		for (i = 0; i < n; i++)
		{
			JsonbValue *v = getIthJsonbValueFromContainer(objects, i);
			ErrorData  *rec;

			args.page = JsonbValueToJsonb(v);
			rec = clerk_try_page_write(clerk_page_plan_write, &args);

			if (rec != NULL)
			{
				object_failed(entity, clerk_json_string(&args.page->root, "id"), rec->message,
							  rec->sqlerrcode, dry_run, run_id, counts);
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


static const char *const event_outcome_names[] = {
	"inserted", "updated", "unchanged", "stale", "gone", "deleted", "tombstone"
};

const char *
clerk_event_outcome_name(ClerkEventOutcome outcome)
{
	return event_outcome_names[outcome];
}

/*
 * A statement of the single-event path, per entity: its SQL (made from the
 * entity's table and mapping) and parameters, prepared on first use.
 */
typedef struct EntityStatement
{
	char	   *(*sql) (const ClerkEntityInfo *ei);
	int			nargs;
	Oid			types[2];
	SPIPlanPtr	plans[CLERK_NENTITIES];
} EntityStatement;

static SPIPlanPtr
entity_plan(EntityStatement *st, ClerkEntity e)
{
	if (st->plans[e] == NULL)
		st->plans[e] = clerk_prepare_saved(st->sql(&clerk_entities[e]), st->nargs, st->types);
	return st->plans[e];
}

/*
 * The upsert of one event: like clerk_page_plan(), but the update (and the
 * pre-filter that spares unchanged rows a lock) also requires the stored
 * row to be live and not newer.  Returns zero rows or one (inserted).
 */
static char *
event_sql(const ClerkEntityInfo *ei)
{
	return psprintf("WITH m AS (SELECT * FROM %s) "
					"INSERT INTO %s AS t "
					"SELECT m.* FROM m WHERE NOT EXISTS "
					"  (SELECT 1 FROM %s s WHERE s.id = m.id AND "
					"     (s.deleted_at IS NOT NULL OR s.raw = m.raw OR s.updated_at > m.updated_at)) "
					"ON CONFLICT (id) DO UPDATE SET (%s) = ROW(%s) "
					"WHERE t.deleted_at IS NULL "
					"  AND (t.updated_at IS NULL OR t.updated_at <= EXCLUDED.updated_at) "
					"  AND t.raw IS DISTINCT FROM EXCLUDED.raw "
					"RETURNING (t.xmax = 0) AS inserted",
					clerk_mapped_sql(ei, "pg_catalog.jsonb_build_array($1)"), ei->table, ei->table,
					clerk_columns_sql(ei, "", NULL), clerk_columns_sql(ei, "EXCLUDED.", NULL));
}

/* Why an event wrote nothing: "gone", "unchanged" or "stale". */
static char *
event_classify_sql(const ClerkEntityInfo *ei)
{
	return psprintf("SELECT CASE WHEN s.deleted_at IS NOT NULL THEN 'gone' "
					"  WHEN s.raw = m.raw THEN 'unchanged' ELSE 'stale' END "
					"FROM %s m JOIN %s s ON s.id = m.id",
					clerk_mapped_sql(ei, "pg_catalog.jsonb_build_array($1)"), ei->table);
}

/*
 * The deletion of one object: mark a live row deleted, or insert the
 * mapped object as a deleted row when there is none.  The column list is
 * the upsert's, with deleted_at taken from $2.  Returns zero rows (the row
 * was deleted already) or one (inserted).
 */
static char *
delete_sql(const ClerkEntityInfo *ei)
{
	return psprintf("INSERT INTO %s AS t (id, %s) "
					"SELECT m.id, %s FROM %s(pg_catalog.jsonb_build_array($1)) m "
					"ON CONFLICT (id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at "
					"WHERE t.deleted_at IS NULL "
					"RETURNING (t.xmax = 0) AS inserted",
					ei->table, clerk_columns_sql(ei, "", NULL), clerk_columns_sql(ei, "m.", "$2"), ei->map);
}

static EntityStatement event_upsert = {.sql = event_sql, .nargs = 1, .types = {JSONBOID}};
static EntityStatement event_classify = {.sql = event_classify_sql, .nargs = 1, .types = {JSONBOID}};
static EntityStatement event_delete = {.sql = delete_sql, .nargs = 2, .types = {JSONBOID, TIMESTAMPTZOID}};

static SPIPlanPtr cascade_plans[lengthof(cascades)];

void
clerk_store_cascade(ClerkEntity entity, ArrayType *ids, TimestampTz deleted_at,
					int64 cascaded[CLERK_NENTITIES])
{
	Datum		values[2] = {PointerGetDatum(ids), TimestampTzGetDatum(deleted_at)};

	for (int i = 0; i < (int) lengthof(cascades); i++)
	{
		const Cascade *c = &cascades[i];

		if (c->parent != entity)
			continue;
		if (cascade_plans[i] == NULL)
		{
			Oid			types[2] = {TEXTARRAYOID, TIMESTAMPTZOID};

			cascade_plans[i] = clerk_prepare_saved(psprintf("UPDATE %s SET deleted_at = $2 "
															"WHERE %s = ANY ($1) AND deleted_at IS NULL",
															clerk_entities[c->child].table, c->column),
												   2, types);
		}
		if (SPI_execute_plan(cascade_plans[i], values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not soft-delete the %s of deleted %s",
				 clerk_entities[c->child].name, clerk_entities[entity].name);
		cascaded[c->child] += (int64) SPI_processed;
	}
}

/* Whether the one row an INSERT ... RETURNING (t.xmax = 0) gave was inserted. */
static bool
returned_inserted(void)
{
	bool		isnull;

	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

ClerkEventOutcome
clerk_store_event(ClerkEntity entity, Jsonb *obj, const char *event_type)
{
	Datum		value = JsonbPGetDatum(obj);
	ClerkEventOutcome outcome;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (SPI_execute_plan(entity_plan(&event_upsert, entity), &value, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "clerk_sync event upsert failed");
	/* (a subscription's event writes a row for each of its items: the first one's outcome) */
	if (SPI_processed >= 1)
		outcome = returned_inserted() ? CLERK_EVENT_INSERTED : CLERK_EVENT_UPDATED;
	else
	{
		char	   *why = NULL;

		/* nothing written: say why (the row may have changed since, so this is a report only) */
		if (SPI_execute_plan(entity_plan(&event_classify, entity), &value, NULL, false, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			why = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (why != NULL && strcmp(why, "gone") == 0)
			outcome = CLERK_EVENT_GONE;
		else if (why != NULL && strcmp(why, "unchanged") == 0)
			outcome = CLERK_EVENT_UNCHANGED;
		else
			outcome = CLERK_EVENT_STALE;
	}
	/* a session's row says which event wrote it last */
	if (entity == CLERK_SESSIONS && event_type != NULL &&
		(outcome == CLERK_EVENT_INSERTED || outcome == CLERK_EVENT_UPDATED ||
		 outcome == CLERK_EVENT_UNCHANGED))
	{
		Oid			types[2] = {JSONBOID, TEXTOID};
		Datum		values[2] = {value, CStringGetTextDatum(event_type)};

		if (SPI_execute_with_args("UPDATE clerk.sessions SET last_event = $2 "
								  "WHERE id = $1 ->> 'id' AND last_event IS DISTINCT FROM $2",
								  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the event of a session");
	}
	SPI_finish();
	return outcome;
}

ClerkEventOutcome
clerk_store_delete(ClerkEntity entity, Jsonb *obj, TimestampTz deleted_at,
				   int64 cascaded[CLERK_NENTITIES])
{
	Datum		values[2];
	ClerkEventOutcome outcome;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[0] = JsonbPGetDatum(obj);
	values[1] = TimestampTzGetDatum(deleted_at);
	if (SPI_execute_plan(entity_plan(&event_delete, entity), values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "clerk_sync soft delete failed");
	if (SPI_processed == 1)
		outcome = returned_inserted() ? CLERK_EVENT_TOMBSTONE : CLERK_EVENT_DELETED;
	else
		outcome = CLERK_EVENT_GONE;

	{
		char	   *id = clerk_json_string(&obj->root, "id");
		int64		ignored[CLERK_NENTITIES] = {0};

		if (id != NULL)
		{
			Datum		idd = CStringGetTextDatum(id);

			clerk_store_cascade(entity, construct_array(&idd, 1, TEXTOID, -1, false, TYPALIGN_INT),
								deleted_at, cascaded != NULL ? cascaded : ignored);
		}
	}
	SPI_finish();
	return outcome;
}
