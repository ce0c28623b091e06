/*
 * connection.c
 *		clerk_test_connection(): does the Clerk API answer and take the key?
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "base/settings.h"
#include "clerk/http.h"
#include "clerk/parse.h"
#include "sync/run_settings.h"
#include "vault/secrets.h"

PG_FUNCTION_INFO_V1(clerk_test_connection);

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
		ClerkRunSettings settings;
		ClerkHttpClient *client;
		ClerkHttpResult res;

		/* the settings a run would take, for one request that is not retried */
		clerk_run_settings_capture(&settings);
		settings.max_retries = 0;
		settings.concurrency = 1;
		client = clerk_run_http_client(CurrentMemoryContext, &settings, key);

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
