/*
 * bulk_insert.c
 *		A page's new rows into their table the way COPY stores them: many heap tuples per call.
 *
 * The rows come mapped (clerk.map_*, in the page's statement) and known to
 * be absent from the table when that statement ran; they go in with
 * table_multi_insert(), a heap page of tuples per WAL record, then their
 * index entries, after the table's NOT NULL and CHECK constraints.  Only
 * what INSERT would do without running anybody's code is done here: a table
 * with an insert trigger that would fire (under the writer's
 * session_replication_role, as trigger.c decides), rules, row-level
 * security, generated columns, or without the INSERT privilege for the
 * current role, is left to the page's INSERT ... ON CONFLICT
 * (clerk_bulk_insert_possible() says no).  A row that
 * appeared meanwhile (a webhook's) fails on the unique index, and the page
 * is then written the ordinary way.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "base/compat.h"
#include "store/bulk_insert.h"

/* COPY flushes its buffer at 1,000 tuples: so do we, within a page */
#define BULK_BATCH 1000

Oid
clerk_table_oid(const ClerkEntityInfo *ei)
{
	const char *dot = strchr(ei->table, '.');

	Assert(dot != NULL);
	return get_relname_relid(dot + 1, get_namespace_oid(pnstrdup(ei->table, dot - ei->table), false));
}

/* Whether an insert into the table would fire one of its triggers, as trigger.c decides it. */
static bool
insert_fires_trigger(TriggerDesc *trig)
{
	if (trig == NULL)
		return false;
	for (int i = 0; i < trig->numtriggers; i++)
	{
		Trigger    *t = &trig->triggers[i];

		if (!TRIGGER_FOR_INSERT(t->tgtype) || t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA ?
			t->tgenabled != TRIGGER_FIRES_ON_ORIGIN : t->tgenabled != TRIGGER_FIRES_ON_REPLICA)
			return true;
	}
	return false;
}

bool
clerk_bulk_insert_possible(Oid relid)
{
	Relation	rel;
	TupleConstr *constr;
	bool		possible;

	if (!OidIsValid(relid) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	rel = table_open(relid, AccessShareLock);
	constr = RelationGetDescr(rel)->constr;
	possible = rel->rd_rel->relkind == RELKIND_RELATION &&
		!rel->rd_rel->relhasrules &&
		!insert_fires_trigger(rel->trigdesc) &&
		(constr == NULL || !CLERK_HAS_GENERATED(constr));
	table_close(rel, AccessShareLock);
	return possible;
}

/*
 * Fill slot (of the table's descriptor) from a row whose first columns are
 * the table's but the dropped ones, in order (more may follow).
 */
static void
fill_slot(TupleTableSlot *slot, HeapTuple row, TupleDesc rowdesc, Datum *values, bool *nulls)
{
	TupleDesc	reldesc = slot->tts_tupleDescriptor;
	int			j = 0;

	heap_deform_tuple(row, rowdesc, values, nulls);
	ExecClearTuple(slot);
	for (int i = 0; i < reldesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(reldesc, i);

		if (att->attisdropped)
		{
			slot->tts_values[i] = (Datum) 0;
			slot->tts_isnull[i] = true;
			continue;
		}
		if (j >= rowdesc->natts || TupleDescAttr(rowdesc, j)->atttypid != att->atttypid)
			elog(ERROR, "a mapped row does not have the columns of its table");
		slot->tts_values[i] = values[j];
		slot->tts_isnull[i] = nulls[j];
		j++;
	}
	ExecStoreVirtualTuple(slot);
}

int64
clerk_bulk_insert(Oid relid, HeapTuple *rows, int n, TupleDesc rowdesc)
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid = GetCurrentCommandId(true);
	TupleTableSlot **slots;
	int			nslots = Min(n, BULK_BATCH);
	Datum	   *values = palloc(rowdesc->natts * sizeof(Datum));
	bool	   *nulls = palloc(rowdesc->natts * sizeof(bool));

	if (n <= 0)
		return 0;
	rel = table_open(relid, RowExclusiveLock);
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	bistate = GetBulkInsertState();
	slots = palloc(nslots * sizeof(TupleTableSlot *));
	for (int i = 0; i < nslots; i++)
		slots[i] = table_slot_create(rel, &estate->es_tupleTable);

	for (int start = 0; start < n; start += BULK_BATCH)
	{
		int			count = Min(n - start, BULK_BATCH);

		for (int i = 0; i < count; i++)
		{
			fill_slot(slots[i], rows[start + i], rowdesc, values, nulls);
			if (rel->rd_att->constr != NULL)
				ExecConstraints(rri, slots[i], estate);
		}
		table_multi_insert(rel, slots, count, cid, 0, bistate);
		for (int i = 0; i < count; i++)
		{
			List	   *recheck;

			ResetPerTupleExprContext(estate);
			/* (no deferrable constraint: those have triggers, which rule this path out) */
			recheck = CLERK_INSERT_INDEX_TUPLES(rri, slots[i], estate);
			list_free(recheck);
		}
	}

	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	/* what follows in the transaction sees the rows, as after INSERT */
	CommandCounterIncrement();
	return n;
}
