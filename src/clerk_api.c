/*
 * clerk_api.c
 *		What clerk_sync knows about the Clerk Backend API: its endpoints'
 *		paths, its answers (parsed, with their counts checked), and
 *		clerk_test_connection().
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
#include "parse.h"
#include "secrets.h"
#include "http.h"

PG_FUNCTION_INFO_V1(clerk_test_connection);

const char *
clerk_list_path(ClerkEntity entity)
{
	switch (entity)
	{
		case CLERK_USERS:
			return "/users";
		case CLERK_ORGANIZATIONS:
			return "/organizations?include_members_count=true";
		case CLERK_MEMBERSHIPS:
			return "/organization_memberships";
		default:
			elog(ERROR, "unknown clerk_sync entity %d", (int) entity);
	}
	return NULL;				/* keep the compiler quiet */
}

bool
clerk_list_has_cursor(ClerkEntity entity)
{
	return entity == CLERK_USERS;
}

char *
clerk_object_path(ClerkEntity entity, const char *id, const char *organization_id,
				  const char *user_id)
{
	switch (entity)
	{
		case CLERK_USERS:
			return psprintf("/users/%s", id);
		case CLERK_ORGANIZATIONS:
			return psprintf("/organizations/%s", id);
		case CLERK_MEMBERSHIPS:
			return psprintf("/organizations/%s/memberships?user_id=%s&limit=100",
							organization_id, user_id);
		default:
			elog(ERROR, "unknown clerk_sync entity %d", (int) entity);
	}
	return NULL;
}

char *
clerk_org_memberships_path(const char *organization_id)
{
	return psprintf("/organizations/%s/memberships", organization_id);
}

bool
clerk_plain_id(const char *id)
{
	const char *p;

	if (id == NULL || *id == '\0' || strlen(id) > 200)
		return false;
	for (p = id; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-'))
			return false;
	return true;
}

void
clerk_scan_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out)
{
	char	   *err = clerk_parse_scan(res->body ? res->body : "", res->body ? res->len : 0, out);

	if (err != NULL)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk sent malformed JSON for %s", what),
				 errdetail("The answer is not JSON: %s.", err)));
}

void
clerk_parse_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out)
{
	clerk_scan_answer(res, what, out);
	clerk_parse_convert(out);
}

int64
clerk_answer_total_count(const ClerkParsed *p, const char *what)
{
	int64		n = clerk_parsed_total_count(p);

	if (n == -2)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk's answer to %s has an invalid total_count", what),
				 errdetail("A total_count is a whole number from 0 to 9223372036854775807.")));
	return n;
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
	char	   *key = clerk_resolve_secret(CLERK_SECRET_API_KEY);
	char	   *error = NULL;
	long		status = 0;
	double		latency = 0;
	int64		total = -1;
	bool		ok = false;

	if (key == NULL)
		error = psprintf("no Clerk secret key is configured. %s", clerk_secret_hint(CLERK_SECRET_API_KEY));
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
			ClerkParsed p;
			char	   *perr = clerk_parse(res.body, res.len, &p);

			if (perr != NULL)
				error = psprintf("Clerk sent malformed JSON for /users/count: %s", perr);
			else if ((total = clerk_parsed_total_count(&p)) == -1)
				error = pstrdup("Clerk's answer to /users/count has no total_count");
			else if (total < 0)
				error = pstrdup("Clerk's answer to /users/count has an invalid total_count");
			else
				ok = true;
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
