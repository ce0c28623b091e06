/*
 * sync.c
 *		One sync run: which listings, in what order, and the deletion sweep.
 *
 * Organizations are listed first, then users and memberships (listing.c:
 * each page in its own transaction); records that failed in earlier runs
 * are asked for again; and after a complete, error-free full listing, what
 * Clerk confirms is gone is soft-deleted.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "clerk/clerk_api.h"
#include "store/transaction.h"
#include "sync/listing.h"
#include "sync/sync.h"

/* deletion candidates confirmed per batch of requests */
#define CONFIRM_BATCH 32

/* What the listing of an entity did, for waiting callers. */
static void
phase_message(ClerkRun *run, ClerkEntity e)
{
	ClerkPageCounts *c = &run->counts[e];

	clerk_run_message(run, "%s: " INT64_FORMAT " fetched, " INT64_FORMAT " inserted, " INT64_FORMAT
					  " updated, " INT64_FORMAT " unchanged, " INT64_FORMAT " failed%s",
					  clerk_entity_name(e), c->fetched, c->inserted, c->updated, c->unchanged,
					  c->failed, run->dry_run ? " (dry run: nothing written)" : "");
}

/* ---- reading ids back from the database ---- */

typedef struct QueryArgs
{
	const char *sql;
	List	   *rows;			/* of char ** (ncols strings) */
	int			ncols;
	MemoryContext mcxt;
} QueryArgs;

static void
run_query(void *varg)
{
	QueryArgs  *q = (QueryArgs *) varg;
	uint64		i;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(q->sql, false, 0) < 0)
		elog(ERROR, "query failed: %s", q->sql);
	q->ncols = SPI_tuptable ? SPI_tuptable->tupdesc->natts : 0;
	for (i = 0; SPI_tuptable && i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(q->mcxt);
		char	  **row = palloc(sizeof(char *) * q->ncols);
		int			c;

		for (c = 0; c < q->ncols; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);

			row[c] = v ? pstrdup(v) : NULL;
		}
		q->rows = lappend(q->rows, row);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

static List *
query_rows(ClerkRun *run, const char *sql)
{
	QueryArgs	q = {sql, NIL, 0, run->run_cxt};

	clerk_in_transaction(run_query, &q);
	return q.rows;
}

/* ---- deletion sweep ---- */

typedef struct DeleteArgs
{
	ClerkEntity entity;
	ArrayType  *ids;
	int64		run_id;
	int64		deleted;
} DeleteArgs;

static void
soft_delete(void *varg)
{
	DeleteArgs *d = (DeleteArgs *) varg;

	d->deleted = clerk_store_soft_delete(d->entity, d->ids, d->run_id);
}

typedef struct ReviveArgs
{
	ClerkRun   *run;
	ClerkEntity entity;
	const ClerkHttpResult *res;
	const char *what;
} ReviveArgs;

/* An object the listing missed but Clerk still has: store it as it is now. */
static void
store_found(void *varg)
{
	ReviveArgs *r = (ReviveArgs *) varg;
	ClerkParsed obj;

	clerk_parse_answer(r->res, r->what, &obj);
	clerk_store_page(r->entity, &obj, r->run->dry_run, true, r->run->run_id,
					 r->res->sent_at, &r->run->counts[r->entity], NULL);
}

/*
 * Whether a listing names id as the id of one of its objects (not merely
 * somewhere in its text: a name or metadata may hold any string).  An
 * answer that is not JSON names nothing for sure, so the object stays.
 */
static bool
lists_id(const ClerkHttpResult *res, const char *id)
{
	ClerkParsed listing;

	if (clerk_parse_scan(res->body, res->len, &listing) != NULL)
		return true;
	for (int i = 0; i < listing.nelems; i++)
	{
		char	   *element_id = clerk_parsed_element_id(&listing, i);

		if (element_id != NULL && strcmp(element_id, id) == 0)
			return true;
	}
	return false;
}

/*
 * Ask Clerk about each candidate; those it confirms gone are soft-deleted
 * (or, in a dry run, counted).  Candidates rows: id [, organization_id,
 * user_id].  Where Clerk has no request for one object (invitations,
 * domains), what the complete listing missed is gone.
 */
static void
confirm_and_delete(ClerkRun *run, ClerkEntity e, List *candidates)
{
	int			n = list_length(candidates);
	int			start;
	bool		askable = clerk_has_object_path(e);

	for (start = 0; start < n; start += CONFIRM_BATCH)
	{
		int			m = Min(CONFIRM_BATCH, n - start);
		MemoryContext old;
		char	  **paths;
		char	  **ids;
		ClerkHttpResult *results;
		Datum	   *gone;
		int			ngone = 0;
		int			k;

		MemoryContextReset(run->page_cxt);
		old = MemoryContextSwitchTo(run->page_cxt);
		paths = palloc(sizeof(char *) * m);
		ids = palloc(sizeof(char *) * m);
		results = palloc0(sizeof(ClerkHttpResult) * m);
		gone = palloc(sizeof(Datum) * m);
		for (k = 0; k < m; k++)
		{
			char	  **row = (char **) list_nth(candidates, start + k);

			ids[k] = row[0];
			paths[k] = clerk_object_path(e, row[0], e == CLERK_MEMBERSHIPS ? row[1] : NULL,
										 e == CLERK_MEMBERSHIPS ? row[2] : NULL);
		}
		if (askable)
			clerk_http_get_many(run->http, m, paths, results);
		for (k = 0; k < m; k++)
		{
			bool		is_gone = false;

			/* no request for one object: a complete listing's word is final */
			if (!askable || (results[k].error == NULL && results[k].status == 404))
				is_gone = true;
			else
			{
				clerk_http_check(&results[k], paths[k]);
				if (e == CLERK_MEMBERSHIPS)
					is_gone = !lists_id(&results[k], ids[k]);
			}
			if (is_gone)
				gone[ngone++] = CStringGetTextDatum(ids[k]);
			else
			{
				ReviveArgs	r = {run, e, &results[k], paths[k]};

				clerk_in_transaction(store_found, &r);
			}
		}
		if (ngone > 0)
		{
			if (run->dry_run)
				run->deleted[e] += ngone;
			else
			{
				DeleteArgs	d;

				d.entity = e;
				d.ids = construct_array(gone, ngone, TEXTOID, -1, false, TYPALIGN_INT);
				d.run_id = run->run_id;
				d.deleted = 0;
				clerk_in_transaction(soft_delete, &d);
				run->deleted[e] += d.deleted;
			}
		}
		MemoryContextSwitchTo(old);
	}
}

static void
deletion_sweep(ClerkRun *run)
{
	List	   *candidates[CLERK_NENTITIES];
	int64		active[CLERK_NENTITIES];
	char	   *skipped = NULL;
	int			e;

	clerk_run_phase(run, "deleting", -1);
	for (e = 0; e < CLERK_NENTITIES; e++)
	{
		const char *table = clerk_entity_table(e);
		bool		optional = (CLERK_ENTITY_BIT(e) & CLERK_OPTIONAL_ENTITIES) != 0;
		List	   *rows;

		candidates[e] = NIL;
		if (!run->listed[e])
			continue;

		rows = query_rows(run, psprintf("SELECT count(*) FROM %s WHERE deleted_at IS NULL", table));
		active[e] = strtoll(((char **) linitial(rows))[0], NULL, 10);
		candidates[e] = query_rows(run, psprintf(
												 "WITH seen AS (SELECT unnest(ids) AS id FROM pg_temp.clerk_seen WHERE entity = '%s') "
												 "SELECT t.id%s FROM %s t WHERE t.deleted_at IS NULL AND NOT EXISTS "
												 "(SELECT 1 FROM seen s WHERE s.id = t.id)%s "
												 /* written since the run began (a webhook): not the listing's to judge */
												 "AND t.synced_at < to_timestamp(" INT64_FORMAT " / 1000.0) "
												 "ORDER BY t.id",
												 clerk_entity_name(e),
												 e == CLERK_MEMBERSHIPS ? ", t.organization_id, t.user_id" : "",
												 table,
												 e == CLERK_PAYMENT_ATTEMPTS ?
												 " AND t.statement_id IN (SELECT unnest(ids) FROM pg_temp.clerk_seen "
												 "WHERE entity = 'statements_asked')" : "",
												 run->started_ms));
		if (list_length(candidates[e]) > 0 &&
			list_length(candidates[e]) > run->settings.max_delete_fraction * active[e] &&
			!(optional && list_length(candidates[e]) == 1))
		{
			char	   *why = psprintf("%d of " INT64_FORMAT " %s are missing from Clerk's listing, more than clerk_sync.max_delete_fraction (%g)",
									   list_length(candidates[e]), active[e],
									   clerk_entity_name(e), run->settings.max_delete_fraction);

			/* users, organizations and memberships: one too many stops the whole sweep */
			if (!optional)
			{
				run->deletion_note = psprintf("skipped: %s; nothing was deleted", why);
				clerk_run_message(run, "deletion %s", run->deletion_note);
				return;
			}
			/* an optional entity's table is small: its own sweep is skipped */
			skipped = skipped ? psprintf("%s; %s", skipped, why) : why;
			clerk_run_message(run, "deletion of %s skipped: %s", clerk_entity_name(e), why);
			candidates[e] = NIL;
		}
	}
	for (e = 0; e < CLERK_NENTITIES; e++)
	{
		ListCell   *lc;
		List	   *checkable = NIL;

		foreach(lc, candidates[e])
		{
			char	  **row = (char **) lfirst(lc);

			if (clerk_plain_id(row[0]) &&
				(e != CLERK_MEMBERSHIPS || (clerk_plain_id(row[1]) && clerk_plain_id(row[2]))))
				checkable = lappend(checkable, row);
		}
		if (checkable == NIL)
			continue;
		clerk_run_message(run, "%s: %d missing from the listing, %s", clerk_entity_name(e),
						  list_length(checkable), clerk_has_object_path(e) ? "confirming with Clerk" :
						  "deleted (Clerk has no request for one)");
		confirm_and_delete(run, e, checkable);
	}
	run->deletion_note = pstrdup(run->dry_run ? "dry run: counted, nothing deleted" : "done");
	if (skipped != NULL)
		run->deletion_note = psprintf("%s, except: %s", run->deletion_note, skipped);
}

/* ---- records that failed before ---- */

typedef struct ForgetArgs
{
	ClerkEntity entity;
	const char *id;				/* NULL: every failure this full listing stored */
	int64		run_id;
} ForgetArgs;

static void
forget_failure(void *varg)
{
	ForgetArgs *f = (ForgetArgs *) varg;

	if (f->id != NULL)
		clerk_store_forget_failure(f->entity, f->id);
	else
		clerk_store_forget_listed_failures(f->run_id);
}

/*
 * Records that failed in earlier runs, and that this run has not stored
 * (or failed) already, are asked for by id: stored now, forgotten when
 * Clerk no longer has them, or counted as failed once more.  So one
 * record that keeps failing neither freezes the incremental mark nor is
 * forgotten.  Memberships have no endpoint of their own: a full listing
 * retries them.
 */
static void
retry_failures(ClerkRun *run)
{
	List	   *rows;
	ListCell   *lc;

	if (run->dry_run)
		return;
	if (!run->incremental)
	{
		ForgetArgs	f = {CLERK_USERS, NULL, run->run_id};

		clerk_in_transaction(forget_failure, &f);
	}
	rows = query_rows(run, psprintf("SELECT entity, id FROM clerk.sync_failures "
									"WHERE last_run_id IS DISTINCT FROM " INT64_FORMAT
									" AND entity IN ('users', 'organizations') ORDER BY entity, id LIMIT 1000",
									run->run_id));
	if (rows == NIL)
		return;
	clerk_run_message(run, "retrying %d records that failed in earlier runs", list_length(rows));
	foreach(lc, rows)
	{
		char	  **row = (char **) lfirst(lc);
		ClerkEntity e = strcmp(row[0], "users") == 0 ? CLERK_USERS : CLERK_ORGANIZATIONS;
		char	   *path;
		ClerkHttpResult res;
		int64		failed = run->counts[e].failed;

		if (!clerk_plain_id(row[1]))
			continue;
		path = clerk_object_path(e, row[1], NULL, NULL);
		clerk_http_get(run->http, path, &res);
		run->failures_retried++;
		/* an answer that is neither the object nor 404: try again next run */
		if (res.error == NULL && res.status >= 400 && res.status < 500 && res.status != 404 &&
			res.status != 401 && res.status != 403)
			continue;
		if (res.error != NULL || res.status != 404)
		{
			ReviveArgs	r = {run, e, &res, path};

			clerk_http_check(&res, path);
			clerk_in_transaction(store_found, &r);
		}
		if (run->counts[e].failed == failed)
		{
			ForgetArgs	f = {e, row[1], run->run_id};

			clerk_in_transaction(forget_failure, &f);
		}
	}
}

/* ---- the run ---- */

/*
 * The incremental mark: the high_water_ms of the last successful run,
 * which is the newest updated_at that run fetched, never later than the
 * time it started; -1 when there is none.
 */
static int64
last_high_water(ClerkRun *run)
{
	List	   *rows = query_rows(run,
								  "SELECT (stats ->> 'high_water_ms')::int8 FROM clerk.sync_runs "
								  "WHERE status = 'succeeded' AND NOT dry_run ORDER BY id DESC LIMIT 1");
	char	   *v = rows != NIL ? ((char **) linitial(rows))[0] : NULL;

	return v ? strtoll(v, NULL, 10) : -1;
}

/*
 * What listing the memberships per organization would ask: a request per
 * page of each organization's members.
 */
static int64
organization_requests(ClerkRun *run)
{
	List	   *rows = query_rows(run, psprintf("SELECT sum(greatest(1, ceil(coalesce(members_count, 0)::numeric / %d)))::int8 "
												"FROM clerk.organizations WHERE deleted_at IS NULL",
												run->settings.page_size));
	char	   *v = rows != NIL ? ((char **) linitial(rows))[0] : NULL;

	return v ? strtoll(v, NULL, 10) : 0;
}

/*
 * Start listing memberships instance-wide; a full run weighs, while it
 * lists, what listing each organization's would cost instead.
 */
static ClerkLister *
begin_memberships(ClerkRun *run)
{
	clerk_run_message(run, "memberships: listing");
	return clerk_memberships_begin(run, run->incremental ? 0 : organization_requests(run));
}

/*
 * Finish listing memberships: the instance-wide listing to its end, then,
 * if it is not there or gave up, each organization's.
 */
static void
finish_memberships(ClerkRun *run, ClerkLister *l)
{
	char	   *why = NULL;
	List	   *orgs;
	ClerkListOutcome outcome;

	clerk_run_phase(run, "memberships", -1);
	outcome = clerk_memberships_end(run, l, &why);
	if (outcome == CLERK_LIST_DONE)
	{
		run->memberships_paging = pstrdup(run->incremental ? "instance-wide, newest first" :
										  "instance-wide, from both ends");
		return;
	}

	if (outcome == CLERK_LIST_GAVE_UP)
	{
		/* the per-organization listing reads these again; stats say how many */
		run->memberships_reread = run->counts[CLERK_MEMBERSHIPS].fetched;
		run->memberships_paging = why;
		clerk_run_message(run, "memberships: %s", why);
	}
	else
	{
		run->memberships_paging = pstrdup("per organization: the instance-wide listing is not available");
		clerk_run_message(run, "memberships: the instance-wide listing is not available, listing per organization");
	}
	/* ask each organization listed in this run (incremental: each one stored) */
	orgs = query_rows(run, run->incremental ?
					  "SELECT id FROM clerk.organizations WHERE deleted_at IS NULL ORDER BY id" :
					  "SELECT DISTINCT unnest(ids) AS id FROM pg_temp.clerk_seen "
					  "WHERE entity = 'organizations' ORDER BY id");
	clerk_list_per_parent(run, CLERK_MEMBERSHIPS, orgs, clerk_org_memberships_path, !run->incremental);
}

/*
 * Payment attempts are listed per statement only.  A statement holds its
 * attempts (its groups), so when one changes, the statement does: a
 * statement that no run has written since the last successful one ended
 * (which listed the attempts of what it wrote), and whose attempts are
 * stored, is not asked again.  A later run asks only for the statements
 * that are new or changed (in this run, or in one that failed since); a
 * full run, those changed since the last full one, so that its sweep sees
 * every attempt gone since.  The statements asked are recorded, so that the
 * sweep deletes only the attempts of those.  Without Clerk Billing (the statements
 * skipped), neither.
 */
static void
list_payment_attempts(ClerkRun *run)
{
	List	   *statements;

	if (run->skipped[CLERK_STATEMENTS] != NULL)
	{
		run->skipped[CLERK_PAYMENT_ATTEMPTS] = run->skipped[CLERK_STATEMENTS];
		clerk_run_message(run, "%s: skipped, the instance does not have Clerk Billing's statements",
						  clerk_entity_name(CLERK_PAYMENT_ATTEMPTS));
		return;
	}
	statements = query_rows(run, psprintf(
							"WITH since AS (SELECT max(finished_at) AS at FROM clerk.sync_runs "
							"               WHERE status = 'succeeded' AND NOT dry_run%s), "
							"s AS (SELECT s.id FROM clerk.billing_statements s, since "
							"       WHERE s.deleted_at IS NULL "
							"         AND (since.at IS NULL OR s.synced_at >= since.at OR NOT EXISTS "
							"              (SELECT 1 FROM clerk.billing_payment_attempts a WHERE a.statement_id = s.id))), "
							"w AS (INSERT INTO pg_temp.clerk_seen (entity, ids) "
							"      SELECT 'statements_asked', array_agg(id) FROM s HAVING count(*) > 0) "
							"SELECT id FROM s ORDER BY id",
							run->incremental ? "" : " AND kind = 'full'"));
	clerk_run_phase(run, "more of Clerk", -1);
	clerk_run_message(run, "%s: listing those of %d statements", clerk_entity_name(CLERK_PAYMENT_ATTEMPTS),
					  list_length(statements));
	clerk_list_per_parent(run, CLERK_PAYMENT_ATTEMPTS, statements, clerk_statement_payment_attempts_path,
						  !run->incremental);
	run->listed[CLERK_PAYMENT_ATTEMPTS] = true;
	phase_message(run, CLERK_PAYMENT_ATTEMPTS);
}

/*
 * The optional entities clerk_sync.entities names, each listed in full
 * (they are few, and their listings have no order by update, so an
 * incremental run lists them whole too), all side by side: their first
 * pages take one round trip together.  An endpoint that the instance's
 * plan does not have (403 or 404 at the first page) is skipped with a
 * notice.  Instance invitations are two listings: without a status Clerk
 * leaves revoked ones out.
 */
static void
list_optional(ClerkRun *run)
{
	ClerkListSpec specs[CLERK_NENTITIES + 1];
	ClerkListOutcome outcomes[CLERK_NENTITIES + 1];
	int			n = 0;
	StringInfoData names;

	initStringInfo(&names);
	for (int e = 0; e < CLERK_NENTITIES; e++)
	{
		if (!(CLERK_ENTITY_BIT(e) & CLERK_OPTIONAL_ENTITIES & run->settings.entities) ||
			e == CLERK_PAYMENT_ATTEMPTS)
			continue;
		specs[n] = clerk_instance_listing(run, e);
		specs[n++].optional = true;
		if (e == CLERK_INVITATIONS)
		{
			specs[n] = specs[n - 1];
			specs[n++].path = psprintf("%s&status=revoked", clerk_list_path(e));
		}
		appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", clerk_entity_name(e));
	}
	if (n > 0)
	{
		clerk_run_phase(run, "more of Clerk", -1);
		clerk_run_message(run, "listing %s", names.data);
		clerk_list_side_by_side(run, specs, n, outcomes);
	}

	for (int i = 0; i < n; i++)
	{
		ClerkEntity e = specs[i].entity;
		bool		found = outcomes[i] != CLERK_LIST_NOT_FOUND;

		/* the second listing of an entity: its verdict joins the first's */
		if (i + 1 < n && specs[i + 1].entity == e)
			found = found && outcomes[++i] != CLERK_LIST_NOT_FOUND;
		if (found)
		{
			run->listed[e] = true;
			phase_message(run, e);
		}
		else
		{
			run->skipped[e] = "the instance does not have this endpoint (HTTP 403 or 404): not in its plan, or not enabled";
			clerk_run_message(run, "%s: skipped, the instance does not have this endpoint (HTTP 403 or 404)",
							  clerk_entity_name(e));
		}
	}
	if (CLERK_ENTITY_BIT(CLERK_PAYMENT_ATTEMPTS) & run->settings.entities)
		list_payment_attempts(run);
}

void
clerk_sync_execute(ClerkRun *run)
{
	ClerkHttpResult res;
	bool		full_listing;
	ClerkListSpec users = clerk_instance_listing(run, CLERK_USERS);
	ClerkListSpec orgs = clerk_instance_listing(run, CLERK_ORGANIZATIONS);
	ClerkLister *memberships;
	ClerkUserEdges *edges = NULL;
	int			count_req;

	run->started_ms = GetCurrentTimestamp() / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	run->http = clerk_run_http_client(run->run_cxt, &run->settings, run->settings.secret_key);

	full_listing = !run->incremental;
	if (run->incremental)
	{
		int64		mark = last_high_water(run);

		if (mark < 0)
		{
			full_listing = true;
			clerk_run_message(run, "no earlier successful run: listing everything");
		}
		else
		{
			run->since_ms = mark - (int64) run->settings.incremental_overlap * 1000;
			clerk_run_message(run, "fetching changes since %s",
							  timestamptz_to_str(time_t_to_timestamptz(run->since_ms / 1000)));
		}
	}

	/*
	 * Organizations first: few, so always listed in full, and how the
	 * memberships are listed depends on their member counts.
	 */
	clerk_run_phase(run, "organizations", -1);
	/* what the users' listing starts from is asked for meanwhile */
	count_req = clerk_http_submit(run->http, CLERK_PATH_USERS_COUNT);
	if (full_listing)
		edges = clerk_user_edges_submit(run);
	clerk_run_message(run, "organizations: listing");
	(void) clerk_list_pages(run, &orgs);
	phase_message(run, CLERK_ORGANIZATIONS);

	/* users */
	clerk_run_phase(run, "users", -1);
	clerk_wait_answer(run, count_req, &res);
	clerk_http_check(&res, CLERK_PATH_USERS_COUNT);
	{
		ClerkParsed count;

		StartTransactionCommand();
		clerk_parse_answer(&res, CLERK_PATH_USERS_COUNT, &count);
		run->users_total_hint = clerk_answer_total_count(&count, CLERK_PATH_USERS_COUNT);
		CommitTransactionCommand();
		MemoryContextSwitchTo(run->run_cxt);
	}
	clerk_http_release(run->http, count_req);
	clerk_run_message(run, "users: %s (Clerk has " INT64_FORMAT ")",
					  full_listing ? "listing" : "fetching recent changes", run->users_total_hint);
	clerk_run_phase(run, "users", run->users_total_hint);

	/*
	 * In a full listing, the memberships listing starts now and, while users
	 * are listed by cursor, goes on side by side with it: whichever answer is
	 * in first is written first, so that the latency of deep membership
	 * pages is spent while users are written.
	 */
	if (full_listing)
	{
		memberships = begin_memberships(run);
		users.total_hint = run->users_total_hint;
		if (!clerk_list_users_by_cursor(run, edges, memberships))
			(void) clerk_list_pages(run, &users);
	}
	else
	{
		users.order_by = "-updated_at";
		users.stop_field = "updated_at";
		users.since_ms = run->since_ms;
		users.concurrency = 1;
		(void) clerk_list_pages(run, &users);
		memberships = begin_memberships(run);
	}
	phase_message(run, CLERK_USERS);

	finish_memberships(run, memberships);
	phase_message(run, CLERK_MEMBERSHIPS);
	run->listed[CLERK_USERS] = run->listed[CLERK_ORGANIZATIONS] = run->listed[CLERK_MEMBERSHIPS] = true;

	list_optional(run);

	retry_failures(run);

	if (!run->incremental)
		deletion_sweep(run);
	else
		run->deletion_note = pstrdup("not attempted: an incremental run cannot see deletions");

	/*
	 * The mark the next incremental run starts from: what this run fetched,
	 * but never past its own start (an updated_at in the future must not
	 * hide the changes made until then).
	 */
	run->high_water_ms = run->dry_run ? 0 : Min(run->max_updated_ms, run->started_ms);
	clerk_run_phase(run, "finishing", -1);
}
