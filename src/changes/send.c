/*
 * send.c
 *		The write-back worker's work: send the committed changes of clerk.changes to Clerk and write the answers.
 *
 * Per object (object_key) one change at a time, the lowest id first: ids
 * follow commit order per object (queue.c).  Across objects, side by side,
 * as many in flight as clerk_sync.concurrency allows, under the rate
 * budget the database's syncs share (clerk/rate_budget.c), and Clerk's
 * limit of 10 writes per object per 10 s where it has one.
 *
 * Each attempt is recorded before it is sent (attempts, in_doubt): if the
 * answer is lost, or the worker dies, the change is in doubt, and a create
 * in doubt is looked up (clerk_writes.c) before it is sent again, so that
 * no retry makes a second object.  A 429, a 5xx, a timeout or a lost
 * connection is tried again later with backoff; any other 4xx fails the
 * change with Clerk's error.  A 2xx answer is written through the one
 * write path (store/), with the ordering rule, in the transaction that
 * marks the change sent: the synced row shows the change as soon as Clerk
 * took it, and an older sync page or the webhook Clerk sends for it does
 * not undo it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/settings.h"
#include "changes/outcome.h"
#include "changes/send.h"
#include "changes/sender_slot.h"
#include "clerk/clerk_writes.h"
#include "clerk/http.h"
#include "store/transaction.h"
#include "sync/run_settings.h"

/*
 * a sender with nothing to do for this long exits (a commit starts another):
 * long enough to spare a busy database a start per commit, short enough not
 * to hold the database (DROP DATABASE waits for its connections)
 */
#define IDLE_EXIT_MS (30 * 1000)
/* without a key, or with the key refused, look again this often */
#define NO_KEY_RETRY_MS 60000
#define PRUNE_EVERY_MS (10 * 60 * 1000)
/* Clerk's per-object window is counted from when a request reaches it */
#define OBJECT_LIMIT_MARGIN_MS 500
/* a change due but not taken (its row locked by a caller) is looked at again after this */
#define WAIT_FLOOR_MS 250
/* changes in flight at most: twice clerk_sync.concurrency's largest value */
#define MAX_FLIGHT 64


/* Clerk's writes per object in the last 10 s, where it limits them */
typedef struct ObjectWrites
{
	char		key[NAMEDATALEN * 2];
	int64		starts[CLERK_OBJECT_WRITES];
	int			next;
} ObjectWrites;

typedef struct Sender
{
	MemoryContext cxt;
	ClerkRunSettings settings;
	ClerkHttpClient *http;
	MemoryContext http_cxt;
	Change	   *flight[MAX_FLIGHT];
	int			nflight;
	bool		reconnect;		/* the key was refused: a new client (key read again) once nothing is in flight */
	int			maxflight;
	HTAB	   *objects;
	int64		last_prune_ms;
} Sender;

static int64
now_ms(void)
{
	instr_time	t;

	INSTR_TIME_SET_CURRENT(t);
	return (int64) INSTR_TIME_GET_MILLISEC(t);
}

/* the configuration was reloaded: a new client, with the new settings, once nothing is in flight */
static bool settings_changed = false;

static void
check_signals(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		settings_changed = true;
	}
}

/* ---- the HTTP client, made when there is something to send ---- */

static void
drop_client(Sender *s)
{
	if (s->http_cxt != NULL)
		MemoryContextDelete(s->http_cxt);	/* its reset callback frees curl */
	s->http_cxt = NULL;
	s->http = NULL;
}

/* false when there is no key (logged): the changes wait */
static bool
ensure_client(Sender *s)
{
	char	   *volatile key = NULL;
	ErrorData  *volatile edata = NULL;
	MemoryContext old = CurrentMemoryContext;

	if (s->http != NULL)
		return true;
	clerk_run_settings_capture(&s->settings);
	PG_TRY();
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		MemoryContextSwitchTo(s->cxt);
		key = clerk_run_key();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(old);
		s->http_cxt = AllocSetContextCreate(s->cxt, "clerk_sync write-back http", ALLOCSET_DEFAULT_SIZES);
		/* the client takes its own copy and wipes this one */
		s->http = clerk_run_http_client(s->http_cxt, &s->settings, key);
		pfree(key);
		key = NULL;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		if (key != NULL)
			explicit_bzero(key, strlen(key));
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("clerk_sync write-back: changes wait: %s", edata->message)));
		FreeErrorData(edata);
		drop_client(s);
		return false;
	}
	s->maxflight = Min(Max(s->settings.concurrency * 2, 2), MAX_FLIGHT);
	return true;
}

/* ---- Clerk's per-object limit ---- */

static ObjectWrites *
object_writes(Sender *s, const char *key)
{
	char		k[NAMEDATALEN * 2];
	bool		found;
	ObjectWrites *w;

	memset(k, 0, sizeof(k));
	strlcpy(k, key, sizeof(k));
	w = hash_search(s->objects, k, HASH_ENTER, &found);
	if (!found)
	{
		memset(w->starts, 0, sizeof(w->starts));
		for (int i = 0; i < CLERK_OBJECT_WRITES; i++)
			w->starts[i] = PG_INT64_MIN / 2;
		w->next = 0;
	}
	return w;
}

/* ms until the object may be written again under Clerk's limit (0: now) */
static int64
object_wait(Sender *s, Change *c, int64 now)
{
	ObjectWrites *w;
	int64		free_at;

	if (!c->op->object_limited)
		return 0;
	w = object_writes(s, c->object_key);
	/* (a margin: the request reaches Clerk a little after it was taken) */
	free_at = w->starts[w->next] + 10000 + OBJECT_LIMIT_MARGIN_MS;
	return free_at > now ? free_at - now : 0;
}

static void
object_started(Sender *s, Change *c, int64 now)
{
	ObjectWrites *w;

	if (!c->op->object_limited)
		return;
	w = object_writes(s, c->object_key);
	w->starts[w->next] = now;
	w->next = (w->next + 1) % CLERK_OBJECT_WRITES;
}

/* ---- taking changes ---- */

/* a pending change c is the head of its object's queue: none of its object is older */
#define HEAD_OF_OBJECT \
	"NOT EXISTS (SELECT FROM clerk.changes e " \
	"WHERE e.object_key OPERATOR(pg_catalog.=) c.object_key " \
	"AND e.status OPERATOR(pg_catalog.=) 'pending' AND e.id OPERATOR(pg_catalog.<) c.id)"

typedef struct TakeArgs
{
	Sender	   *s;
	int			want;
	List	   *taken;			/* of Change * */
	int64		deferred_ms;	/* a change held back by the per-object limit: look again then */
} TakeArgs;

/* the object keys of the changes in flight, a text[] */
static Datum
flight_keys(Sender *s)
{
	Datum	   *keys = palloc(sizeof(Datum) * Max(s->nflight, 1));

	for (int i = 0; i < s->nflight; i++)
		keys[i] = CStringGetTextDatum(s->flight[i]->object_key);
	return PointerGetDatum(construct_array(keys, s->nflight, TEXTOID, -1, false, TYPALIGN_INT));
}

static void
take_changes(void *varg)
{
	TakeArgs   *a = (TakeArgs *) varg;
	Sender	   *s = a->s;
	Oid			types[2] = {TEXTARRAYOID, INT4OID};
	Datum		values[2];
	int64		now = now_ms();
	List	   *ids = NIL;
	ListCell   *lc;
	uint64		n;

	values[0] = flight_keys(s);
	values[1] = Int32GetDatum(a->want);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the head of each object's queue that is due and not in flight */
	if (SPI_execute_with_args("SELECT id, operation, object_id, organization_id, object_key, arguments, "
							  "arguments::text, attempts, in_doubt FROM clerk.changes c "
							  "WHERE status OPERATOR(pg_catalog.=) 'pending' "
							  "AND next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() "
							  "AND NOT (object_key OPERATOR(pg_catalog.=) ANY ($1)) "
							  "AND " HEAD_OF_OBJECT " "
							  "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pending changes");
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext cxt = AllocSetContextCreate(s->cxt, "clerk_sync change", ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Change	   *c = palloc0(sizeof(Change));
		char	   *opname = SPI_getvalue(tup, td, 2);
		int64		wait;

		c->cxt = cxt;
		c->id = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
		c->op = clerk_write_op(opname);
		c->object_id = SPI_getvalue(tup, td, 3);
		c->organization_id = SPI_getvalue(tup, td, 4);
		c->object_key = SPI_getvalue(tup, td, 5);
		c->args = DatumGetJsonbPCopy(SPI_getbinval(tup, td, 6, &isnull));
		c->body = SPI_getvalue(tup, td, 7);
		c->attempts = DatumGetInt32(SPI_getbinval(tup, td, 8, &isnull)) + 1;
		c->in_doubt = DatumGetBool(SPI_getbinval(tup, td, 9, &isnull));
		c->req = -1;
		MemoryContextSwitchTo(old);
		if (c->op == NULL)
		{
			/* a newer library's operation: leave it for that library */
			MemoryContextDelete(cxt);
			continue;
		}
		wait = object_wait(s, c, now);
		if (wait > 0)
		{
			a->deferred_ms = a->deferred_ms > 0 ? Min(a->deferred_ms, wait) : wait;
			MemoryContextDelete(cxt);
			continue;
		}
		object_started(s, c, now);
		old = MemoryContextSwitchTo(s->cxt);	/* the list outlives SPI and the transaction */
		a->taken = lappend(a->taken, c);
		MemoryContextSwitchTo(old);
		ids = lappend(ids, c);
	}
	/* each attempt is on record before it is sent: if its answer is lost, it is in doubt */
	if (ids != NIL)
	{
		Oid			t[1] = {INT8ARRAYOID};
		Datum	   *idv = palloc(sizeof(Datum) * list_length(ids));
		Datum		v[1];
		int			n_ids = 0;

		foreach(lc, ids)
			idv[n_ids++] = Int64GetDatum(((Change *) lfirst(lc))->id);
		v[0] = PointerGetDatum(construct_array(idv, n_ids, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args("UPDATE clerk.changes SET attempts = attempts OPERATOR(pg_catalog.+) 1, "
								  "last_attempt_at = pg_catalog.clock_timestamp(), in_doubt = true "
								  "WHERE id OPERATOR(pg_catalog.=) ANY ($1)", 1, t, v, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the attempts");
	}
	SPI_finish();
}

/* ---- sending ---- */

static void
submit(Sender *s, Change *c)
{
	char	   *path;

	/* a create whose answer was lost is looked up before it is sent again */
	if (c->in_doubt && c->op->answer == CLERK_WRITE_CREATED)
	{
		path = clerk_write_lookup_path(c->op, c->organization_id, &c->args->root);
		c->looking_up = true;
		c->req = clerk_http_submit(s->http, path);
	}
	else
	{
		path = clerk_write_path(c->op, c->object_id, c->organization_id);
		c->looking_up = false;
		c->req = clerk_http_submit_write(s->http, c->op->method, path,
										 strcmp(c->op->method, "DELETE") == 0 ? NULL : c->body);
	}
	pfree(path);
}

typedef struct Settle
{
	Sender	   *s;
	Change	   *c;
	ClerkHttpResult *r;
	Finish	   *f;
	bool		settled;		/* false: a lookup found nothing, the create is to be sent */
} Settle;

/* What the answer means, and its record (in one transaction: parsing the answer needs one) */
static void
settle_change(void *arg)
{
	Settle	   *a = (Settle *) arg;

	a->settled = clerk_outcome_judge(a->c, a->r, a->s->settings.retry_backoff, a->f);
	if (a->f->key_refused)
		a->s->reconnect = true;
	if (a->settled)
		clerk_outcome_record(a->f);
}

static void
forget(Sender *s, int i)
{
	Change	   *c = s->flight[i];

	if (s->http != NULL && c->req >= 0)
		clerk_http_release(s->http, c->req);
	MemoryContextDelete(c->cxt);
	s->flight[i] = s->flight[--s->nflight];
}

/* ---- the loop ---- */

static void
prune(void *arg)
{
	int			retention = *(int *) arg;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(retention)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM clerk.changes WHERE status OPERATOR(pg_catalog.<>) 'pending' "
							  "AND finished_at OPERATOR(pg_catalog.<) (pg_catalog.clock_timestamp() "
							  "OPERATOR(pg_catalog.-) pg_catalog.make_interval(mins => $1))",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune clerk.changes");
	SPI_finish();
}

typedef struct NextDue
{
	int64		ms;				/* until the next pending change is due; -1 if none */
} NextDue;

static void
next_due(void *arg)
{
	NextDue    *d = (NextDue *) arg;
	bool		isnull;
	Datum		v;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the due time of the head of each object's queue: what take_changes may take */
	if (SPI_execute("SELECT (pg_catalog.date_part('epoch', pg_catalog.min(next_attempt_at) "
					"OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000)::int8 "
					"FROM clerk.changes c WHERE status OPERATOR(pg_catalog.=) 'pending' "
					"AND " HEAD_OF_OBJECT,
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pending changes");
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	d->ms = isnull ? -1 : Max(DatumGetInt64(v), 0);
	SPI_finish();
}

/*
 * Give the slot up and exit, unless work came meanwhile (true: exit).  A
 * commit after the release starts a new sender, and the look after it
 * sees every commit before: none goes unseen.  Work due later is left to
 * the launcher, which starts a sender when it is due.
 */
static bool
may_exit(int64 retry_ms)
{
	NextDue		d;

	clerk_sender_release();
	clerk_in_transaction(next_due, &d);
	if (d.ms == 0 && retry_ms == 0)
		return !clerk_sender_claim();
	if (d.ms >= 0)
		clerk_sender_want(MyDatabaseId,
						  TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Max(d.ms, retry_ms)));
	return true;
}

static void
send_loop(MemoryContext cxt, bool probe)
{
	Sender		s;
	HASHCTL		hctl;
	int64		idle_since = now_ms();

	memset(&s, 0, sizeof(s));
	s.cxt = cxt;

	hctl.keysize = NAMEDATALEN * 2;
	hctl.entrysize = sizeof(ObjectWrites);
	hctl.hcxt = s.cxt;
	s.objects = hash_create("clerk_sync object writes", 256, &hctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	s.last_prune_ms = now_ms() - PRUNE_EVERY_MS;

	for (;;)
	{
		int64		wait_ms;
		TakeArgs	take;
		ListCell   *lc;
		NextDue		d;

		check_signals();
		ResetLatch(MyLatch);
		if (settings_changed)
		{
			s.reconnect = true;
			settings_changed = false;
		}
		if (s.reconnect && s.nflight == 0)
		{
			drop_client(&s);
			s.reconnect = false;
		}

		if (now_ms() - s.last_prune_ms >= PRUNE_EVERY_MS)
		{
			int			retention = clerk_sync_change_retention;

			s.last_prune_ms = now_ms();
			if (retention > 0)
				clerk_in_transaction(prune, &retention);
		}

		/* take what is due, while there is room in flight */
		memset(&take, 0, sizeof(take));
		if (s.nflight < Max(s.maxflight / 2, 1) || s.http == NULL)
		{
			if (!ensure_client(&s))
			{
				/* no key (logged): the launcher starts a sender again in a while */
				if (may_exit(NO_KEY_RETRY_MS))
					break;
				continue;
			}
			take.s = &s;
			take.want = s.maxflight - s.nflight;
			pgstat_report_activity(STATE_RUNNING, "clerk_sync write-back: taking changes");
			clerk_in_transaction(take_changes, &take);
			foreach(lc, take.taken)
			{
				Change	   *c = (Change *) lfirst(lc);

				s.flight[s.nflight++] = c;
				submit(&s, c);
			}
		}

		if (s.nflight > 0)
		{
			int		   *ids = palloc(sizeof(int) * s.nflight);
			int			done;
			ClerkHttpResult r;
			Finish		f;
			Settle		settle;
			Change	   *c;

			idle_since = now_ms();
			pgstat_report_activity(STATE_RUNNING, "clerk_sync write-back: sending");
			for (int i = 0; i < s.nflight; i++)
				ids[i] = s.flight[i]->req;
			/* a commit (the latch) is taken at once, beside what is in flight */
			done = clerk_http_wait_any_or_latch(s.http, ids, s.nflight, true);
			pfree(ids);
			if (done < 0)
				continue;
			c = s.flight[done];
			clerk_http_wait(s.http, c->req, &r);
			settle.s = &s;
			settle.c = c;
			settle.r = &r;
			settle.f = &f;
			clerk_in_transaction(settle_change, &settle);
			if (!settle.settled)
			{
				/* the lookup found nothing: the create goes now */
				clerk_http_release(s.http, c->req);
				submit(&s, c);
				continue;
			}
			forget(&s, done);
			continue;
		}

		/* nothing in flight: wait until the next change is due, a commit, or exit */
		if (take.taken != NIL)
			continue;
		clerk_in_transaction(next_due, &d);
		if (d.ms < 0)
		{
			/* nothing pending: a probe is done; a sender waits a while for commits */
			wait_ms = IDLE_EXIT_MS - (now_ms() - idle_since);
			if (probe || wait_ms <= 0)
			{
				if (may_exit(0))
					break;
				idle_since = now_ms();
				continue;
			}
		}
		else if (d.ms > IDLE_EXIT_MS)
		{
			/* due much later (a backoff): the launcher starts a sender then */
			if (may_exit(0))
				break;
			continue;
		}
		else
		{
			/* due now but not taken (its row locked, or a newer library's), or due soon */
			wait_ms = Max(d.ms, WAIT_FLOOR_MS);
			if (take.deferred_ms > 0)
				wait_ms = Min(wait_ms, take.deferred_ms);
		}
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) Max(wait_ms, 1), PG_WAIT_EXTENSION);
	}
	drop_client(&s);
}

void
clerk_send_changes(bool probe)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "clerk_sync write-back",
											  ALLOCSET_DEFAULT_SIZES);

	PG_TRY();
	{
		send_loop(cxt, probe);
	}
	PG_FINALLY();
	{
		/* curl goes with the memory, whatever happened (its reset callback) */
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();
}
