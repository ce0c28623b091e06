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
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/settings.h"
#include "base/subtransaction.h"
#include "changes/send.h"
#include "changes/sender_slot.h"
#include "clerk/clerk_writes.h"
#include "clerk/http.h"
#include "clerk/json_members.h"
#include "clerk/parse.h"
#include "store/store.h"
#include "store/transaction.h"
#include "sync/run_settings.h"

/*
 * a sender with nothing to do for this long exits (a commit starts another):
 * long enough to spare a busy database a start per commit, short enough not
 * to hold the database (DROP DATABASE waits for its connections)
 */
#define IDLE_EXIT_MS (30 * 1000)
/* a change whose answers keep failing (5xx, lost) fails after this many attempts */
#define MAX_ATTEMPTS 20
#define MAX_BACKOFF_MS (5 * 60 * 1000)
/* without a key, or with the key refused, look again this often */
#define NO_KEY_RETRY_MS 60000
#define PRUNE_EVERY_MS (10 * 60 * 1000)
/* a change due but not taken (its row locked by a caller) is looked at again after this */
#define WAIT_FLOOR_MS 250
#define MAX_ERROR_LEN 1000
/* changes in flight at most: twice clerk_sync.concurrency's largest value */
#define MAX_FLIGHT 64

typedef struct Change
{
	int64		id;
	const ClerkWriteOp *op;
	char	   *object_id;
	char	   *organization_id;
	char	   *object_key;
	Jsonb	   *args;
	char	   *body;			/* args as text */
	int			attempts;		/* including this one */
	bool		in_doubt;		/* an earlier attempt's answer was lost */
	bool		looking_up;		/* the request in flight is the lookup of a create */
	int			req;			/* the request in flight */
	MemoryContext cxt;
} Change;

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
	free_at = w->starts[w->next] + 10000;
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
							  "AND NOT EXISTS (SELECT FROM clerk.changes e "
							  "WHERE e.object_key OPERATOR(pg_catalog.=) c.object_key "
							  "AND e.status OPERATOR(pg_catalog.=) 'pending' AND e.id OPERATOR(pg_catalog.<) c.id) "
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
	foreach(lc, ids)
	{
		Change	   *c = (Change *) lfirst(lc);
		Oid			t[1] = {INT8OID};
		Datum		v[1] = {Int64GetDatum(c->id)};

		if (SPI_execute_with_args("UPDATE clerk.changes SET attempts = attempts OPERATOR(pg_catalog.+) 1, "
								  "last_attempt_at = pg_catalog.clock_timestamp(), in_doubt = true "
								  "WHERE id OPERATOR(pg_catalog.=) $1", 1, t, v, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record an attempt");
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

/* ---- outcomes ---- */

typedef enum Outcome
{
	OUT_SENT,					/* Clerk took it: the answer (if any) is stored */
	OUT_RETRY,					/* try again at retry_ms from now */
	OUT_FAILED					/* Clerk refused it, or it kept failing */
} Outcome;

typedef struct Finish
{
	Change	   *c;
	Outcome		outcome;
	Jsonb	   *object;			/* with OUT_SENT: Clerk's object, to store */
	bool		deleted;		/* ... as a deletion */
	long		http_status;
	const char *error_code;
	const char *error_message;
	int64		retry_ms;
	bool		in_doubt;
	bool		uncounted;		/* the attempt does not count (429, a refused key) */
	const char *note;			/* with OUT_SENT: how it was known */
} Finish;

static void
store_object(void *arg)
{
	Finish	   *f = (Finish *) arg;

	if (f->deleted)
	{
		int64		cascaded[CLERK_NENTITIES] = {0};

		(void) clerk_store_delete(f->c->op->entity, f->object, GetCurrentTimestamp(), cascaded);
	}
	else
		(void) clerk_store_event(f->c->op->entity, f->object, "write-back");
}

static void
record_outcome(void *arg)
{
	Finish	   *f = (Finish *) arg;
	Oid			types[9] = {INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID, BOOLOID, TEXTOID, BOOLOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *result_id = NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (f->outcome == OUT_SENT && f->object != NULL)
	{
		ErrorData  *edata;

		result_id = clerk_json_string(&f->object->root, "id");
		/* Clerk took the change whatever happens here: a store that fails is noted, not a failure */
		edata = clerk_try(store_object, f);
		if (edata != NULL)
		{
			f->error_message = psprintf("sent, but the answer could not be stored: %s", edata->message);
			f->error_code = unpack_sql_state(edata->sqlerrcode);
		}
	}
	values[0] = Int64GetDatum(f->c->id);
	values[1] = CStringGetTextDatum(f->outcome == OUT_SENT ? "sent" :
									f->outcome == OUT_FAILED ? "failed" : "pending");
	values[2] = Int32GetDatum((int32) f->http_status);
	nulls[2] = f->http_status > 0 ? ' ' : 'n';
	values[3] = f->error_code ? CStringGetTextDatum(f->error_code) : (Datum) 0;
	nulls[3] = f->error_code ? ' ' : 'n';
	if (f->error_message != NULL)
	{
		int			len = pg_mbcliplen(f->error_message, strlen(f->error_message), MAX_ERROR_LEN);

		values[4] = PointerGetDatum(cstring_to_text_with_len(f->error_message, len));
	}
	else if (f->note != NULL)
		values[4] = CStringGetTextDatum(f->note);
	nulls[4] = (f->error_message || f->note) ? ' ' : 'n';
	values[5] = Int64GetDatum(f->retry_ms);
	values[6] = BoolGetDatum(f->in_doubt);
	values[7] = result_id ? CStringGetTextDatum(result_id) : (Datum) 0;
	nulls[7] = result_id ? ' ' : 'n';
	/* a change canceled while it was in flight and sent says so: sent is what happened */
	values[8] = BoolGetDatum(f->uncounted);
	if (SPI_execute_with_args("UPDATE clerk.changes SET status = $2, http_status = $3, error_code = $4, "
							  "attempts = attempts OPERATOR(pg_catalog.-) CASE WHEN $9 THEN 1 ELSE 0 END, "
							  "error_message = $5, in_doubt = $7, result_id = COALESCE($8, result_id), "
							  "next_attempt_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'pending' "
							  "THEN (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) "
							  "pg_catalog.make_interval(secs => $6 OPERATOR(pg_catalog./) 1000.0)) ELSE next_attempt_at END, "
							  "finished_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'pending' THEN NULL "
							  "ELSE pg_catalog.clock_timestamp() END "
							  "WHERE id OPERATOR(pg_catalog.=) $1 AND (status OPERATOR(pg_catalog.=) 'pending' "
							  "OR $2 OPERATOR(pg_catalog.=) 'sent')",
							  9, types, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record a change's outcome");
	SPI_finish();
}

static int64
backoff_ms(Sender *s, int attempts)
{
	double		d = Max(s->settings.retry_backoff, 1);

	for (int i = 1; i < attempts && d < MAX_BACKOFF_MS; i++)
		d *= 2;
	d = Min(d, MAX_BACKOFF_MS);
	return (int64) (d / 2 + pg_prng_double(&pg_global_prng_state) * d / 2);
}

/* Clerk's error body: {"errors": [{"code", "message", "long_message"}]} */
static void
clerk_error(Finish *f, ClerkParsed *p)
{
	Jsonb	   *errors = p->root ? clerk_json_array(&p->root->root, "errors") : NULL;
	JsonbValue *first;

	if (errors == NULL || (first = getIthJsonbValueFromContainer(&errors->root, 0)) == NULL ||
		first->type != jbvBinary)
		return;
	f->error_code = clerk_json_string(first->val.binary.data, "code");
	f->error_message = clerk_json_string(first->val.binary.data, "long_message");
	if (f->error_message == NULL)
		f->error_message = clerk_json_string(first->val.binary.data, "message");
}

/* The answer's object: the first of its objects, or its root. */
static Jsonb *
answer_object(ClerkParsed *p)
{
	JsonbValue *v;

	if (p->objects != NULL && (v = getIthJsonbValueFromContainer(&p->objects->root, 0)) != NULL)
		return JsonbValueToJsonb(v);
	return p->root && JB_ROOT_IS_OBJECT(p->root) ? p->root : NULL;
}

/*
 * The object a deletion without an answer body deletes: {"id": ...}, or for
 * a membership (keyed by its own id, which the change does not know) the
 * stored one of the organization and user.  Inside the settling transaction.
 */
static Jsonb *
gone_object(Change *c)
{
	if (c->object_id == NULL)
		return NULL;
	if (c->op->entity == CLERK_MEMBERSHIPS)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		values[2] = {CStringGetTextDatum(c->organization_id), CStringGetTextDatum(c->object_id)};
		Jsonb	   *raw = NULL;
		bool		isnull;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute_with_args("SELECT raw FROM clerk.organization_members "
								  "WHERE organization_id OPERATOR(pg_catalog.=) $1 "
								  "AND user_id OPERATOR(pg_catalog.=) $2 AND deleted_at IS NULL",
								  2, types, values, NULL, true, 1) == SPI_OK_SELECT && SPI_processed > 0)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				raw = DatumGetJsonbP(SPI_datumTransfer(d, false, -1));
		}
		SPI_finish();
		return raw;
	}
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(psprintf("{\"id\": \"%s\"}", c->object_id))));
}

/* Decide what a finished request means for its change. */
static bool
judge(Sender *s, Change *c, ClerkHttpResult *r, Finish *f)
{
	ClerkParsed p;
	bool		parsed = false;

	memset(f, 0, sizeof(*f));
	f->c = c;
	f->http_status = r->status;
	if (r->error == NULL && r->body != NULL && r->len > 0)
		parsed = clerk_parse(r->body, r->len, &p) == NULL;

	if (c->looking_up)
	{
		Jsonb	   *found = NULL;

		if (r->error == NULL && r->status == 200 && parsed)
			found = clerk_write_lookup_find(c->op, &p, &c->args->root);
		if (found != NULL)
		{
			f->outcome = OUT_SENT;
			f->object = found;
			f->note = "the answer to an earlier attempt was lost; Clerk had made the object";
			return true;
		}
		if (r->error == NULL && ((r->status == 200 && parsed) || r->status == 404))
		{
			/* not made: send the create itself now */
			c->in_doubt = false;
			return false;
		}
		/* the lookup itself failed (or its answer did not parse): try again later, still in doubt */
		f->outcome = c->attempts >= MAX_ATTEMPTS ? OUT_FAILED : OUT_RETRY;
		f->in_doubt = true;
		f->error_message = r->error ? r->error : psprintf("looking up the object answered HTTP %ld", r->status);
		f->retry_ms = r->retry_after_ms > 0 ? r->retry_after_ms : backoff_ms(s, c->attempts);
		return true;
	}

	if (r->error == NULL && r->status >= 200 && r->status < 300)
	{
		f->outcome = OUT_SENT;
		f->object = parsed ? answer_object(&p) : NULL;
		f->deleted = c->op->answer == CLERK_WRITE_GONE;
		if (f->deleted && f->object == NULL)
			f->object = gone_object(c);
		return true;
	}
	if (r->error == NULL && r->status == 429)
	{
		f->outcome = OUT_RETRY;
		f->retry_ms = Max(r->retry_after_ms, 1000);
		f->error_code = "too_many_requests";
		f->error_message = "Clerk answered 429 (rate limited); sent again after its Retry-After";
		f->uncounted = true;	/* a 429 was not applied: it does not count */
		return true;
	}
	if (r->error == NULL && r->status >= 400 && r->status < 500 && r->status != 408 && r->status != 401)
	{
		if (parsed)
			clerk_error(f, &p);
		/* a deletion or revocation in doubt that Clerk no longer finds was applied by the lost attempt */
		if (c->in_doubt && (r->status == 404 || r->status == 400) &&
			(c->op->answer == CLERK_WRITE_GONE || strstr(c->op->name, "revoke") != NULL))
		{
			f->outcome = OUT_SENT;
			f->note = "the answer to an earlier attempt was lost; Clerk no longer had the object to change";
			f->error_code = NULL;
			f->error_message = NULL;
			f->object = c->op->answer == CLERK_WRITE_GONE ? gone_object(c) : NULL;
			f->deleted = f->object != NULL;
			return true;
		}
		f->outcome = OUT_FAILED;
		if (f->error_message == NULL)
			f->error_message = psprintf("Clerk answered HTTP %ld", r->status);
		return true;
	}
	/* 5xx, 408, 401, or no answer: Clerk may or may not have applied it */
	f->outcome = OUT_RETRY;
	f->in_doubt = r->status != 401;
	f->error_message = r->error ? r->error : psprintf("Clerk answered HTTP %ld", r->status);
	f->retry_ms = r->status == 401 ? NO_KEY_RETRY_MS : backoff_ms(s, c->attempts);
	if (r->status == 401)
	{
		/* the key was refused: nothing was applied, and the change waits for a good key */
		f->uncounted = true;
		s->reconnect = true;
	}
	else if (c->attempts >= MAX_ATTEMPTS)
		f->outcome = OUT_FAILED;
	return true;
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

	a->settled = judge(a->s, a->c, a->r, a->f);
	if (a->settled)
		record_outcome(a->f);
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
					"AND NOT EXISTS (SELECT FROM clerk.changes e "
					"WHERE e.object_key OPERATOR(pg_catalog.=) c.object_key "
					"AND e.status OPERATOR(pg_catalog.=) 'pending' AND e.id OPERATOR(pg_catalog.<) c.id)",
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
send_loop(Sender *sp, bool probe)
{
	Sender		s = *sp;
	HASHCTL		hctl;
	int64		idle_since = now_ms();

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
	Sender	   *s = MemoryContextAllocZero(cxt, sizeof(Sender));

	s->cxt = cxt;
	PG_TRY();
	{
		send_loop(s, probe);
	}
	PG_FINALLY();
	{
		/* curl goes with the memory, whatever happened (its reset callback) */
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();
}
