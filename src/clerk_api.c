/*
 * clerk_api.c
 *		What clerk_sync knows about the Clerk Backend API: paths, answer
 *		shapes, and clerk_test_connection().
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "clerk_api.h"
#include "http.h"

PG_FUNCTION_INFO_V1(clerk_test_connection);

Jsonb *
clerk_parse_json(const char *body, const char *what)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile result = NULL;

	/*
	 * jsonb_in reports malformed input as 22P02; catch it in a
	 * subtransaction and say instead that Clerk's answer was broken.
	 */
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body)));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk sent malformed JSON for %s", what),
				 errdetail("%s", edata->message)));
	}
	PG_END_TRY();
	return result;
}

/* Look up one member of a JSON object. */
static JsonbValue *
object_member(Jsonb *obj, const char *key, JsonbValue *out)
{
	if (!JB_ROOT_IS_OBJECT(obj))
		return NULL;
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), out);
}

int64
clerk_json_int(Jsonb *obj, const char *key)
{
	JsonbValue	v;

	if (object_member(obj, key, &v) == NULL || v.type != jbvNumeric)
		return -1;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
}

int
clerk_json_array_length(Jsonb *j)
{
	JsonbValue	v;

	if (JB_ROOT_IS_ARRAY(j) && !JB_ROOT_IS_SCALAR(j))
		return JB_ROOT_COUNT(j);
	if (object_member(j, "data", &v) != NULL && v.type == jbvBinary &&
		JsonContainerIsArray(v.val.binary.data))
		return JsonContainerSize(v.val.binary.data);
	return -1;
}

static void
append_json_field(StringInfo buf, const char *key, const char *value, bool quote)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else if (quote)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, value);
}

/*
 * clerk_test_connection() returns jsonb
 *
 * One GET /users/count, without retries, reporting whether the API answered
 * and accepted the key.  Failures are reported in the result, not raised;
 * the key itself is never part of it.
 */
Datum
clerk_test_connection(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	char	   *key = clerk_resolve_secret_key();
	char	   *error = NULL;
	long		status = 0;
	double		latency = 0;
	int64		total = -1;
	bool		ok = false;

	if (key == NULL)
		error = pstrdup("no Clerk secret key is configured: set clerk_sync.secret_key, call clerk_set_secret_key(), or set CLERK_SECRET_KEY in the server's environment");
	else
	{
		ClerkHttpConfig config;
		ClerkHttpClient *volatile client = NULL;
		ClerkHttpResult res;

		config.api_url = clerk_sync_api_url;
		config.secret_key = key;
		config.timeout_ms = clerk_sync_request_timeout;
		config.max_retries = 0;
		config.retry_backoff_ms = clerk_sync_retry_backoff;
		config.rate_limit = clerk_sync_rate_limit;
		config.concurrency = 1;
		PG_TRY();
		{
			client = clerk_http_create(CurrentMemoryContext, &config);
		}
		PG_FINALLY();
		{
			explicit_bzero(key, strlen(key));
		}
		PG_END_TRY();

		clerk_http_get(client, "/users/count", &res);
		clerk_http_destroy(client);
		status = res.status;
		latency = res.latency_ms;
		if (res.error != NULL)
			error = res.error;
		else if (res.status != 200)
			error = psprintf("Clerk answered HTTP %ld", res.status);
		else
		{
			MemoryContext mcxt = CurrentMemoryContext;

			PG_TRY();
			{
				Jsonb	   *j = clerk_parse_json(res.body, "/users/count");

				total = clerk_json_int(j, "total_count");
				if (total < 0)
					error = pstrdup("Clerk's answer to /users/count has no total_count");
				else
					ok = true;
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(mcxt);
				edata = CopyErrorData();
				if (edata->sqlerrcode != CLERK_ERRCODE_BAD_RESPONSE)
					PG_RE_THROW();
				FlushErrorState();
				error = edata->message;
			}
			PG_END_TRY();
		}
	}

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_json_field(&buf, "ok", ok ? "true" : "false", false);
	append_json_field(&buf, "status", status > 0 ? psprintf("%ld", status) : NULL, false);
	append_json_field(&buf, "latency_ms", status > 0 ? psprintf("%.1f", latency) : NULL, false);
	append_json_field(&buf, "api_url", clerk_sync_api_url, true);
	append_json_field(&buf, "users_total", total >= 0 ? psprintf(INT64_FORMAT, total) : NULL, false);
	append_json_field(&buf, "error", error, true);
	appendStringInfoChar(&buf, '}');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
