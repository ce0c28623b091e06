/*
 * outcome.c
 *		What Clerk's answer to a change means (sent, to retry, failed), and its record with the object Clerk answered.
 *
 * A 429 waits for its Retry-After and does not count as an attempt, nor
 * does a refused key; a 5xx, a timeout or a lost connection may have been
 * applied: the change is in doubt, tried again with backoff, and fails
 * after MAX_ATTEMPTS; any other 4xx fails it with Clerk's error.  A
 * deletion or revocation in doubt that Clerk no longer finds was applied.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "base/subtransaction.h"
#include "changes/outcome.h"
#include "clerk/json_members.h"
#include "clerk/parse.h"
#include "store/store.h"

/* a change whose answers keep failing (5xx, lost) fails after this many attempts */
#define MAX_ATTEMPTS 20
#define MAX_BACKOFF_MS (5 * 60 * 1000)
/* with the key refused, look again this often */
#define KEY_RETRY_MS 60000
#define MAX_ERROR_LEN 1000

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

void
clerk_outcome_record(Finish *f)
{
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
backoff_ms(int retry_backoff, int attempts)
{
	double		d = Max(retry_backoff, 1);

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

bool
clerk_outcome_judge(Change *c, ClerkHttpResult *r, int retry_backoff, Finish *f)
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
		f->retry_ms = r->retry_after_ms > 0 ? r->retry_after_ms : backoff_ms(retry_backoff, c->attempts);
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
	f->retry_ms = r->status == 401 ? KEY_RETRY_MS : backoff_ms(retry_backoff, c->attempts);
	if (r->status == 401)
	{
		/* the key was refused: nothing was applied, and the change waits for a good key */
		f->uncounted = true;
		f->key_refused = true;
	}
	else if (c->attempts >= MAX_ATTEMPTS)
		f->outcome = OUT_FAILED;
	return true;
}

