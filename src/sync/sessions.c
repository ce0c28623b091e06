/*
 * sessions.c
 *		clerk_sync_sessions(): the login history of given users, fetched from Clerk.
 *
 * Clerk lists sessions only per user (GET /sessions?user_id=...), so there
 * is no instance-wide listing to sync: the session webhooks keep
 * clerk.sessions current, and this backfills it, for the users named or
 * those active since the last backfill.  The requests are paced by the
 * rate limit and run side by side like a sync's; the pages are written
 * through the same write path, in the caller's transaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "base/extension.h"
#include "base/settings.h"
#include "clerk/clerk_api.h"
#include "store/role.h"
#include "store/store.h"
#include "sync/run_settings.h"

PG_FUNCTION_INFO_V1(clerk_sync_sessions);

/* users whose sessions are asked for at once */
#define SESSIONS_BATCH 32

/* The audit action that marks a backfill, and so "since the last backfill". */
#define BACKFILL_ACTION "sync.sessions"

/* One page of a user's sessions. */
static char *
page_path(const char *user_id, int limit, int offset)
{
	return psprintf("%s&limit=%d&offset=%d", clerk_user_sessions_path(user_id), limit, offset);
}

/* The ids of the users to ask about (SPI connected, as the writer). */
static List *
users_to_ask(ArrayType *user_ids)
{
	List	   *ids = NIL;
	int			ret;

	if (user_ids != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(user_ids, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				ids = lappend(ids, TextDatumGetCString(elems[i]));
		return ids;
	}
	ret = SPI_execute("SELECT id FROM clerk.users WHERE deleted_at IS NULL AND last_active_at >= "
					  "coalesce((SELECT max(occurred_at) FROM clerk.audit_logs "
					  "          WHERE action = '" BACKFILL_ACTION "'), '-infinity') ORDER BY id",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the users to backfill sessions for");
	for (uint64 i = 0; i < SPI_processed; i++)
		ids = lappend(ids, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return ids;
}

/*
 * clerk_sync_sessions(user_ids text[] DEFAULT NULL) returns jsonb
 *
 * Fetch and store the sessions of the users named (NULL: of the users
 * active since the last backfill); a user Clerk does not know is skipped.
 * Returns the counts: users, requests, fetched, inserted, updated,
 * unchanged, failed.
 */
Datum
clerk_sync_sessions(PG_FUNCTION_ARGS)
{
	ArrayType  *user_ids = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "clerk_sync_sessions",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	ClerkRunSettings settings;
	ClerkHttpClient *http;
	ClerkPageCounts counts = {0};
	ClerkSavedUser saved;
	List	   *users;
	int64		asked = 0;
	int64		requests = 0;
	char	   *actor = GetUserNameFromId(GetUserId(), false);
	char	   *result;
	int			nusers;

	clerk_run_settings_capture(&settings);
	old = MemoryContextSwitchTo(cxt);
	/* the client's curl memory is freed with cxt, on every path */
	http = clerk_run_http_client(cxt, &settings, clerk_run_key());

	clerk_become_writer(&saved, CLERK_SQL_FOR_SYNC);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	users = users_to_ask(user_ids);
	nusers = list_length(users);

	for (int start = 0; start < nusers; start += SESSIONS_BATCH)
	{
		int			m = Min(SESSIONS_BATCH, nusers - start);
		char	   *paths[SESSIONS_BATCH];
		char	   *users_of[SESSIONS_BATCH];
		int			offsets[SESSIONS_BATCH];
		ClerkHttpResult results[SESSIONS_BATCH];
		int			n = 0;

		for (int k = 0; k < m; k++)
		{
			char	   *id = (char *) list_nth(users, start + k);

			/* an id that is not a Clerk id cannot name a user in a URL */
			if (!clerk_plain_id(id))
				continue;
			users_of[n] = id;
			offsets[n] = 0;
			paths[n++] = page_path(id, settings.page_size, 0);
		}
		while (n > 0)
		{
			int			more = 0;

			memset(results, 0, sizeof(results));
			clerk_http_get_many(http, n, paths, results);
			requests += n;
			for (int k = 0; k < n; k++)
			{
				ClerkParsed page;
				int64		total;
				int64		before = counts.fetched;
				int			offset = offsets[k] + settings.page_size;

				/* a user Clerk does not have (any more) has no sessions to fetch */
				if (results[k].error == NULL && results[k].status == 404)
					continue;
				clerk_http_check(&results[k], paths[k]);
				clerk_parse_answer(&results[k], paths[k], &page);
				total = clerk_answer_total_count(&page, paths[k]);
				clerk_store_page(CLERK_SESSIONS, &page, false, false, 0, results[k].sent_at,
								 &counts, NULL);
				/* a full page, and Clerk says there are more: the next one */
				if (counts.fetched - before == settings.page_size && total > offset)
				{
					users_of[more] = users_of[k];
					offsets[more] = offset;
					paths[more++] = page_path(users_of[k], settings.page_size, offset);
				}
			}
			n = more;
		}
		asked += m;
		CHECK_FOR_INTERRUPTS();
	}

	clerk_store_prune_sessions(clerk_sync_session_retention);
	result = psprintf("{\"users\": " INT64_FORMAT ", \"requests\": " INT64_FORMAT
					  ", \"fetched\": " INT64_FORMAT ", \"inserted\": " INT64_FORMAT
					  ", \"updated\": " INT64_FORMAT ", \"unchanged\": " INT64_FORMAT
					  ", \"failed\": " INT64_FORMAT "}",
					  asked, requests, counts.fetched, counts.inserted, counts.updated,
					  counts.unchanged, counts.failed);
	clerk_audit(actor, BACKFILL_ACTION, "sessions", NULL, NULL, 0, result);
	SPI_finish();
	clerk_restore_user(&saved);

	MemoryContextSwitchTo(old);
	clerk_http_destroy(http);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result)));
}
