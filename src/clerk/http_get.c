/*
 * http_get.c
 *		Blocking GETs over the HTTP client, and the check that turns an answer that is no 2xx into an error.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "base/base.h"
#include "clerk/http.h"

void
clerk_http_get_many(ClerkHttpClient *client, int n, char **paths,
					ClerkHttpResult *results)
{
	int		   *ids = palloc(sizeof(int) * n);
	int			i;

	for (i = 0; i < n; i++)
		ids[i] = clerk_http_submit(client, paths[i]);
	for (i = 0; i < n; i++)
	{
		ClerkHttpResult r;

		clerk_http_wait(client, ids[i], &r);
		/* copy out, so the answer outlives the request */
		results[i] = r;
		results[i].body = r.body ? pstrdup(r.body) : NULL;
		results[i].error = r.error ? pstrdup(r.error) : NULL;
	}
	for (i = 0; i < n; i++)
		clerk_http_release(client, ids[i]);
	pfree(ids);
}

void
clerk_http_get(ClerkHttpClient *client, const char *path, ClerkHttpResult *result)
{
	char	   *p = unconstify(char *, path);

	clerk_http_get_many(client, 1, &p, result);
}

void
clerk_http_check(const ClerkHttpResult *result, const char *what)
{
	if (result->error != NULL)
	{
		if (result->sqlerrcode == CLERK_ERRCODE_KEY_REJECTED)
			ereport(ERROR,
					(errcode(result->sqlerrcode),
					 errmsg("%s", result->error),
					 errdetail("The request for %s was refused.", what),
					 errhint("Check the key stored with clerk_set_secret_key(), the file clerk_sync.secret_key_file names, or CLERK_SECRET_KEY; it must be a valid secret key of this Clerk instance.")));
		ereport(ERROR,
				(errcode(result->sqlerrcode),
				 errmsg("%s", result->error),
				 errdetail("The request for %s failed after its retries.", what),
				 errhint("Check clerk_sync.api_url and that the Clerk API is reachable from the database server.")));
	}
	if (result->status < 200 || result->status > 299)
	{
		/* Clerk's error body names the problem; show its first message */
		const char *body = result->body ? result->body : "";
		int			cut = pg_mbcliplen(body, strlen(body), 300);

		ereport(ERROR,
				(errcode(CLERK_ERRCODE_API_ERROR),
				 errmsg("Clerk answered the request for %s with HTTP %ld", what, result->status),
				 errdetail("The answer began: %.*s", cut, body)));
	}
}
