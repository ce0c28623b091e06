/*
 * queue.c
 *		A change to Clerk queued in the caller's transaction: its checks, its body, its row, and the wake-up at commit.
 *
 * The change is a row of clerk.changes: if the transaction rolls back, so
 * does the row, and nothing is sent.  When it commits, a transaction
 * callback wakes the database's write-back worker (sender_slot.c), so a
 * committed change is picked up at once, without polling.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "base/extension.h"
#include "base/settings.h"
#include "changes/queue.h"
#include "changes/sender_slot.h"

/* the advisory lock space of the per-object queue order (pg_locks: advisory, classid) */
#define CLERK_CHANGE_LOCK_CLASS 0x436c6b51

static bool callback_registered = false;
static bool wake_at_commit = false;

static void
changes_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (wake_at_commit)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that queued a change to Clerk"),
						 errdetail("A change is sent when its transaction commits; a prepared transaction commits later, from any session.")));
			break;
		case XACT_EVENT_COMMIT:
			if (wake_at_commit)
			{
				wake_at_commit = false;
				clerk_sender_wake(MyDatabaseId);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

void
clerk_change_wake_at_commit(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(changes_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

void
clerk_change_begin(ClerkChange *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->op = clerk_write_op(name);
	if (c->op == NULL)
		elog(ERROR, "unknown change operation \"%s\"", name);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue a change to Clerk on a standby"),
				 errdetail("Changes are queued and sent by the primary server."),
				 errhint("Call %s on the primary.", name)));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue a change to Clerk in a read-only transaction")));
	clerk_require_preload("Writing to Clerk");
	c->queued_by = GetUserNameFromId(GetUserId(), false);
	initStringInfo(&c->body);
	appendStringInfoChar(&c->body, '{');
	clerk_become_writer(&c->saved, CLERK_SQL_FOR_CHANGES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
add_key(ClerkChange *c, const char *key)
{
	if (c->nfields++ > 0)
		appendStringInfoString(&c->body, ", ");
	escape_json(&c->body, key);
	appendStringInfoString(&c->body, ": ");
}

void
clerk_change_text(ClerkChange *c, const char *key, const char *value)
{
	add_key(c, key);
	escape_json(&c->body, value);
}

void
clerk_change_jsonb(ClerkChange *c, const char *key, Jsonb *value)
{
	add_key(c, key);
	(void) JsonbToCString(&c->body, &value->root, VARSIZE(value));
}

void
clerk_change_int(ClerkChange *c, const char *key, int value)
{
	add_key(c, key);
	appendStringInfo(&c->body, "%d", value);
}

void
clerk_change_bool(ClerkChange *c, const char *key, bool value)
{
	add_key(c, key);
	appendStringInfoString(&c->body, value ? "true" : "false");
}

Datum
clerk_change_query(const char *sql, int nargs, const char **args, bool *found)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;

	Assert(nargs <= 4);
	for (int i = 0; i < nargs; i++)
	{
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	if (SPI_execute_with_args(sql, nargs, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check a change's arguments");
	*found = SPI_processed > 0;
	if (!*found)
		return (Datum) 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		*found = false;
		return (Datum) 0;
	}
	{
		int16		typlen;
		bool		typbyval;

		get_typlenbyval(SPI_gettypeid(SPI_tuptable->tupdesc, 1), &typlen, &typbyval);
		return SPI_datumTransfer(d, typbyval, typlen);
	}
}

int64
clerk_change_queue(ClerkChange *c, const char *object_id, const char *organization_id,
				   const char *object_key)
{
	LOCKTAG		tag;
	uint32		h = hash_bytes((const unsigned char *) object_key, strlen(object_key));
	Oid			types[7] = {NAMEOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;

	appendStringInfoChar(&c->body, '}');

	/*
	 * Per object, ids follow commit order: a transaction queuing a change
	 * of an object waits here until every other transaction that queued one
	 * of the same object has ended, and only then draws its id.  (Objects
	 * whose keys share a hash wait for each other too: that costs time,
	 * never order.)
	 */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, CLERK_CHANGE_LOCK_CLASS, h, 2);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	values[1] = CStringGetTextDatum(c->op->name);
	values[2] = CStringGetTextDatum(c->op->object_type);
	values[3] = object_id ? CStringGetTextDatum(object_id) : (Datum) 0;
	nulls[3] = object_id ? ' ' : 'n';
	values[4] = organization_id ? CStringGetTextDatum(organization_id) : (Datum) 0;
	nulls[4] = organization_id ? ' ' : 'n';
	values[5] = CStringGetTextDatum(object_key);
	values[6] = DirectFunctionCall1(jsonb_in, CStringGetDatum(c->body.data));
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(c->queued_by));
	if (SPI_execute_with_args("INSERT INTO clerk.changes (queued_by, operation, object_type, object_id, "
							  "organization_id, object_key, arguments) VALUES ($1, $2, $3, $4, $5, $6, $7) "
							  "RETURNING id",
							  7, types, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not queue the change");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	clerk_restore_user(&c->saved);
	clerk_change_wake_at_commit();
	return id;
}
