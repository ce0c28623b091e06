/*
 * run.c
 *		What a sync run reports: progress and messages to waiters, its stats.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

#include "sync/run.h"

void
clerk_run_message(ClerkRun *run, const char *fmt,...)
{
	char		buf[CLERK_MSG_LEN];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* never cut a character in two: the NOTICE is converted to the client's encoding */
	buf[pg_mbcliplen(buf, strlen(buf), sizeof(buf) - 1)] = '\0';
	elog(DEBUG1, "clerk_sync: %s", buf);
	clerk_slot_post_message(run->slot, buf);
}

void
clerk_run_phase(ClerkRun *run, const char *phase, int64 total_hint)
{
	clerk_slot_set_phase(run->slot, phase, total_hint);
	clerk_run_progress(run, 0);
}

void
clerk_run_progress(ClerkRun *run, int64 rows)
{
	clerk_slot_set_progress(run->slot, run->pages, rows,
							run->http ? clerk_http_stats(run->http) : NULL);
}

char *
clerk_run_stats_json(ClerkRun *run)
{
	StringInfoData buf;
	ClerkHttpStats last;
	int			e;

	/* the client is gone once the run ended; its counters were kept */
	if (run->http)
		run->http_stats = *clerk_http_stats(run->http);
	last = run->http_stats;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (e = 0; e < CLERK_NENTITIES; e++)
	{
		ClerkPageCounts *c = &run->counts[e];

		/* an optional entity that this run did not list has no counts to show */
		if ((CLERK_ENTITY_BIT(e) & CLERK_OPTIONAL_ENTITIES) && !run->listed[e] && c->fetched == 0)
			continue;
		if (e == CLERK_SESSIONS)
			continue;
		appendStringInfo(&buf, "\"%s\": {\"fetched\": " INT64_FORMAT ", \"inserted\": " INT64_FORMAT
						 ", \"updated\": " INT64_FORMAT ", \"unchanged\": " INT64_FORMAT
						 ", \"deleted\": " INT64_FORMAT ", \"failed\": " INT64_FORMAT
						 ", \"repaired\": " INT64_FORMAT "}, ",
						 clerk_entity_name(e), c->fetched, c->inserted, c->updated,
						 c->unchanged, run->deleted[e], c->failed, c->repaired);
	}
	appendStringInfo(&buf, "\"pages\": " INT64_FORMAT ", \"requests\": " INT64_FORMAT
					 ", \"retries\": " INT64_FORMAT ", \"rate_limited\": " INT64_FORMAT
					 ", \"rate_limit_waits\": " INT64_FORMAT ", \"bytes\": " INT64_FORMAT,
					 run->pages, last.requests, last.retries, last.rate_limited,
					 last.rate_limit_waits, last.bytes);
	appendStringInfo(&buf, ", \"concurrency\": {\"max\": %d, \"peak\": %d, \"last\": %d, \"backoffs\": " INT64_FORMAT "}",
					 last.concurrency_max, last.concurrency_peak, last.concurrency, last.backoffs);
	if (run->deletion_note)
	{
		appendStringInfoString(&buf, ", \"deletion\": ");
		escape_json(&buf, run->deletion_note);
	}
	appendStringInfo(&buf, ", \"wait_ms\": %.0f, \"write_ms\": %.0f", run->wait_ms, run->write_ms);
	if (run->high_water_ms > 0)
		appendStringInfo(&buf, ", \"high_water_ms\": " INT64_FORMAT, run->high_water_ms);
	if (run->incremental)
		appendStringInfo(&buf, ", \"since_ms\": " INT64_FORMAT, run->since_ms);
	appendStringInfo(&buf, ", \"shifts_repaired\": " INT64_FORMAT ", \"failures_retried\": " INT64_FORMAT,
					 run->shifts_repaired, run->failures_retried);
	if (run->users_paging)
	{
		appendStringInfoString(&buf, ", \"users_paging\": ");
		escape_json(&buf, run->users_paging);
	}
	if (run->memberships_paging)
	{
		appendStringInfoString(&buf, ", \"memberships_paging\": ");
		escape_json(&buf, run->memberships_paging);
	}
	/* the optional entities the instance does not have, and why */
	{
		bool		any = false;

		for (e = 0; e < CLERK_NENTITIES; e++)
			if (run->skipped[e] != NULL)
			{
				appendStringInfo(&buf, "%s\"%s\": ", any ? ", " : ", \"skipped\": {",
								 clerk_entity_name(e));
				escape_json(&buf, run->skipped[e]);
				any = true;
			}
		if (any)
			appendStringInfoChar(&buf, '}');
	}
	if (run->memberships_reread > 0)
		appendStringInfo(&buf, ", \"memberships_reread\": " INT64_FORMAT, run->memberships_reread);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}
