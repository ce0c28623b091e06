/*
 * sync.c
 *		One sync run: list users, organizations and memberships page by
 *		page, write each page in its own transaction, then (after a
 *		complete, error-free full listing) soft-delete what Clerk confirms
 *		is gone.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "clerk_api.h"
#include "json_members.h"
#include "sync.h"
#include "transaction.h"

/* how often (in pages) a waiting caller hears how far the run is */
#define MESSAGE_EVERY_PAGES 5
/* deletion candidates confirmed per batch of requests */
#define CONFIRM_BATCH 32


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
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	strlcpy(run->slot->msgs[run->slot->msg_seq % CLERK_MSG_RING], buf, CLERK_MSG_LEN);
	run->slot->msg_seq++;
	LWLockRelease(clerk_shared->lock);
	ConditionVariableBroadcast(&run->slot->cv);
}

void
clerk_run_phase(ClerkRun *run, const char *phase, int64 total_hint)
{
	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	strlcpy(run->slot->progress.phase, phase, sizeof(run->slot->progress.phase));
	run->slot->progress.rows = 0;
	run->slot->progress.total_hint = total_hint;
	LWLockRelease(clerk_shared->lock);
	clerk_run_progress(run, 0);
}

void
clerk_run_progress(ClerkRun *run, int64 rows)
{
	const ClerkHttpStats *hs = run->http ? clerk_http_stats(run->http) : NULL;

	LWLockAcquire(clerk_shared->lock, LW_EXCLUSIVE);
	run->slot->progress.pages = run->pages;
	run->slot->progress.rows = rows;
	if (hs)
	{
		run->slot->progress.requests = hs->requests;
		run->slot->progress.retries = hs->retries;
		run->slot->progress.rate_limited = hs->rate_limited;
		run->slot->progress.rate_limit_waits = hs->rate_limit_waits;
		run->slot->progress.concurrency = hs->concurrency;
	}
	LWLockRelease(clerk_shared->lock);
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
	if (run->memberships_reread > 0)
		appendStringInfo(&buf, ", \"memberships_reread\": " INT64_FORMAT, run->memberships_reread);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* ---- writing one page ---- */

/* One listing: what list_pages() walks. */
typedef struct ListSpec
{
	ClerkEntity entity;
	const char *path;			/* may already carry a query string */
	const char *order_by;
	/*
	 * With stop_field, the list is newest first and the walk stops after the
	 * first page holding an object whose stop_field is older than since_ms;
	 * pages then overlap, so that a shift of the list between two requests
	 * (objects deleted meanwhile) is seen and repaired.
	 */
	const char *stop_field;
	int64		since_ms;
	bool		allow_404;		/* a 404 at the first page: the endpoint is not there */
	int			concurrency;
	int64		total_hint;		/* objects expected, or -1 */
	/*
	 * With both_ends, the list (its total known from the first page) is read
	 * from both ends at once, oldest first and newest first, until the two
	 * halves meet: no offset goes deeper than half the list, which halves
	 * what a server that walks every skipped row spends on it.
	 */
	bool		both_ends;
	/* asked after each page (offset, latency): true stops the listing, unfinished */
	bool		(*give_up) (ClerkRun *run, int64 offset, double latency_ms, int64 total);
} ListSpec;

/* The instance-wide listing of an entity, oldest first, with the run's concurrency. */
static ListSpec
instance_listing(ClerkRun *run, ClerkEntity entity)
{
	return (ListSpec) {.entity = entity, .path = clerk_list_path(entity), .order_by = "created_at",
	.concurrency = run->settings.concurrency, .total_hint = -1};
}

/* How a listing ended. */
typedef enum ListOutcome
{
	LIST_DONE,
	LIST_NOT_FOUND,				/* allow_404 and the first page was a 404 */
	LIST_GAVE_UP				/* give_up said so */
} ListOutcome;

typedef struct PageArgs PageArgs;

struct PageArgs
{
	ClerkRun   *run;
	const ListSpec *spec;
	const ClerkHttpResult *res;
	const char *what;			/* the request, for messages */
	bool		track_seen;
	bool		want_ids;
	/* called once the answer is scanned, before it is converted and written */
	void		(*scanned) (PageArgs *a, const ClerkParsed *page);
	void	   *hook_arg;
	/* out */
	int			count;			/* elements in the page */
	int64		total;			/* the page's total_count, or -1 */
	int64		min_ms;			/* oldest value of the stop field in the page */
	int64		max_updated_ms;
	int64		min_created_ms;
	int64		max_created_ms;
	List	   *ids;			/* with want_ids: the page's ids, in the run's context */
};

static void
write_page(void *varg)
{
	PageArgs   *a = (PageArgs *) varg;
	ClerkRun   *run = a->run;
	ClerkParsed page;
	ClerkPageFacts facts = {.want_ids = a->want_ids};
	ListCell   *lc;

	/*
	 * The answers of the requests in flight keep arriving meanwhile; read
	 * them off the sockets between the steps, so that a full socket buffer
	 * never holds the API up while a page is written.
	 */
	clerk_http_pump(run->http);
	clerk_scan_answer(a->res, a->what, &page);
	if (!page.is_list)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk's answer to %s is not a list", a->what),
				 errdetail("A list endpoint must answer with a JSON array or an object with a \"data\" array.")));
	a->count = page.nelems;
	if (a->scanned)
		a->scanned(a, &page);
	clerk_http_pump(run->http);
	clerk_parse_convert(&page);
	a->total = clerk_answer_total_count(&page, a->what);
	clerk_http_pump(run->http);
	clerk_store_page(a->spec->entity, &page, run->dry_run, a->track_seen, run->run_id,
					 a->res->sent_at, &run->counts[a->spec->entity], &facts);
	clerk_http_pump(run->http);
	a->max_updated_ms = facts.max_updated_ms;
	a->min_created_ms = facts.min_created_ms;
	a->max_created_ms = facts.max_created_ms;
	a->min_ms = a->spec->stop_field && strcmp(a->spec->stop_field, "created_at") == 0 ?
		facts.min_created_ms : facts.min_updated_ms;
	if (facts.ids != NIL)
	{
		MemoryContext old = MemoryContextSwitchTo(run->run_cxt);

		foreach(lc, facts.ids)
			a->ids = lappend(a->ids, pstrdup((char *) lfirst(lc)));
		MemoryContextSwitchTo(old);
	}
}

/* Wait until one of the n requests is done, the wait counted in wait_ms; returns its index. */
static int
wait_first(ClerkRun *run, const int *reqs, int n)
{
	instr_time	t0,
				t1;
	int			i;

	INSTR_TIME_SET_CURRENT(t0);
	i = clerk_http_wait_any(run->http, reqs, n);
	INSTR_TIME_SET_CURRENT(t1);
	INSTR_TIME_SUBTRACT(t1, t0);
	run->wait_ms += INSTR_TIME_GET_MILLISEC(t1);
	return i;
}

/* Wait for request `req` of a listing, the wait counted in wait_ms. */
static void
wait_answer(ClerkRun *run, int req, ClerkHttpResult *res)
{
	(void) wait_first(run, &req, 1);
	clerk_http_wait(run->http, req, res);
}

/* After each page: the progress shown, and every few pages a message. */
static void
page_done(ClerkRun *run, ClerkEntity entity, int64 fetched_before)
{
	int64		fetched = run->counts[entity].fetched - fetched_before;

	clerk_run_progress(run, fetched);
	if (run->pages % MESSAGE_EVERY_PAGES == 0)
		clerk_run_message(run, "%s: " INT64_FORMAT " fetched so far", clerk_entity_name(entity), fetched);
}

/*
 * Write the answer to request `req` of a listing in its own transaction,
 * timed, and let the request go; *a says what the page held.
 */
static void
write_answer(ClerkRun *run, const ListSpec *spec, const ClerkHttpResult *res, const char *what,
			 int req, bool track_seen, bool want_ids, PageArgs *a)
{
	instr_time	t0,
				t1;

	/* the caller's hook stays; every other field is filled here */
	*a = (PageArgs) {.run = run, .spec = spec, .res = res, .what = what, .track_seen = track_seen,
	.want_ids = want_ids, .scanned = a->scanned, .hook_arg = a->hook_arg};
	INSTR_TIME_SET_CURRENT(t0);
	clerk_in_transaction(write_page, a);
	INSTR_TIME_SET_CURRENT(t1);
	INSTR_TIME_SUBTRACT(t1, t0);
	run->write_ms += INSTR_TIME_GET_MILLISEC(t1);
	clerk_http_release(run->http, req);
	run->pages++;
	if (spec->entity == CLERK_USERS && a->max_updated_ms > run->max_updated_ms)
		run->max_updated_ms = a->max_updated_ms;
}

/* A set of ids seen by one listing, to check that pages overlap. */
#define SEEN_KEY_LEN 128

static HTAB *
seen_set(ClerkRun *run)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = SEEN_KEY_LEN;
	ctl.entrysize = SEEN_KEY_LEN;
	ctl.hcxt = run->run_cxt;
	return hash_create("clerk_sync listing ids", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* Whether any of ids is in the set; adds them all. */
static bool
seen_any(HTAB *set, List *ids)
{
	ListCell   *lc;
	bool		any = false;

	foreach(lc, ids)
	{
		char		key[SEEN_KEY_LEN];
		bool		found;

		memset(key, 0, sizeof(key));
		strlcpy(key, (const char *) lfirst(lc), sizeof(key));
		(void) hash_search(set, key, HASH_ENTER, &found);
		if (found)
			any = true;
	}
	return any;
}

/* The requests of one listing in flight, oldest first. */
typedef struct PageRing
{
	int			ring;			/* slots: the page being written, and those asked for */
	int			head;			/* the oldest request not yet written */
	int			inflight;		/* submitted and not yet written */
	int		   *ids;
	int64	   *offsets;
	bool	   *from_end;		/* both_ends: read newest first */
	char	  **paths;
	int64		next_offset;
	int64		next_end_offset;	/* both_ends: the next offset from the newest end */
	int			limit;
	int			step;			/* offset from one page to the next */
	const char *sep;			/* before the query parameters */
} PageRing;

/*
 * Ask for the page after the last one asked for (both_ends: from the end
 * that has read less).
 */
static void
submit_next(ClerkRun *run, const ListSpec *spec, PageRing *r)
{
	int			k = (r->head + r->inflight) % r->ring;
	bool		from_end = spec->both_ends && r->next_end_offset < r->next_offset;
	int64		offset = from_end ? r->next_end_offset : r->next_offset;

	if (r->paths[k])
		pfree(r->paths[k]);
	r->paths[k] = psprintf("%s%slimit=%d&offset=" INT64_FORMAT "&order_by=%s%s",
						   spec->path, r->sep, r->limit, offset, from_end ? "-" : "",
						   spec->order_by);
	r->offsets[k] = offset;
	r->from_end[k] = from_end;
	/* a deep page may take longer for its depth alone: that is no congestion */
	r->ids[k] = offset > 0 ? clerk_http_submit_varying(run->http, r->paths[k]) :
		clerk_http_submit(run->http, r->paths[k]);
	if (from_end)
		r->next_end_offset += r->step;
	else
		r->next_offset += r->step;
	r->inflight++;
}

/* stop-field listings step back this often, at most, before giving up */
#define MAX_SHIFT_REPAIRS 50

/*
 * Whether the listing has asked for every page it needs: up to the known
 * total (from both ends: the two halves overlap by a page, so that objects
 * added or removed meanwhile cannot open a gap where they meet).
 */
static bool
asked_all(const ListSpec *spec, const PageRing *r, int64 total)
{
	if (total < 0)
		return false;
	if (spec->both_ends)
		return r->next_offset + r->next_end_offset >= total + r->limit;
	return r->next_offset > total;
}

/*
 * One listing in progress: list_pages() walks it to the end; a caller that
 * walks another listing at the same time (see list_users_by_cursor) steps
 * it whenever its next answer is in.
 */
typedef struct Lister
{
	const ListSpec *spec;
	PageRing	r;
	int			depth;			/* pages asked for ahead */
	int			allowed;		/* pages that may be asked for now */
	int64		total;			/* objects in the list, or -1 while unknown */
	int64		before;			/* fetched before this listing */
	HTAB	   *seen;			/* newest first: the ids seen, to check that pages overlap */
	int			shifts;
	int64		front_newest;	/* both_ends: the newest created_at read from the oldest end */
	int64		end_oldest;		/* and the oldest read from the newest end */
	bool		done;
	ListOutcome outcome;
} Lister;

/* Ask for the pages that may be asked for now. */
static void
lister_submit(ClerkRun *run, Lister *l)
{
	/* (the list can outgrow its total while it is read: then go on) */
	while (l->r.inflight < l->allowed && (!asked_all(l->spec, &l->r, l->total) || l->r.inflight == 0))
		submit_next(run, l->spec, &l->r);
	clerk_http_pump(run->http);
}

static void
lister_start(ClerkRun *run, Lister *l, const ListSpec *spec)
{
	int			limit = run->settings.page_size;
	bool		newest_first = spec->stop_field != NULL;
	/* newest first, pages overlap by this much (see ListSpec) */
	int			overlap = newest_first && limit >= 2 ? Max(1, limit / 10) : 0;

	memset(l, 0, sizeof(*l));
	l->spec = spec;
	l->before = run->counts[spec->entity].fetched;

	/*
	 * Up to `concurrency` requests run at once (the HTTP client sees to
	 * that); as many again wait queued behind them, so that a connection
	 * whose answer has arrived starts on the next page at once, even while
	 * a page is being written.  A newest-first listing goes one page at a
	 * time: where its next page starts depends on the page before.
	 */
	l->depth = newest_first ? 1 : spec->concurrency * 2;
	l->seen = newest_first ? seen_set(run) : NULL;
	l->front_newest = l->end_oldest = -1;
	l->outcome = LIST_DONE;

	/*
	 * How many objects there are, when known (the user count, or a list's
	 * total_count): no page is asked for past the one that ends the list.
	 * Until it is known, the first page goes alone.
	 */
	l->total = newest_first ? -1 : spec->total_hint;
	l->allowed = l->total >= 0 ? l->depth : 1;

	l->r.ring = l->depth + 1;	/* the page being written, and those asked for */
	l->r.ids = palloc(sizeof(int) * l->r.ring);
	l->r.offsets = palloc(sizeof(int64) * l->r.ring);
	l->r.from_end = palloc0(sizeof(bool) * l->r.ring);
	l->r.paths = palloc0(sizeof(char *) * l->r.ring);
	l->r.limit = limit;
	l->r.step = limit - overlap;
	l->r.sep = strchr(spec->path, '?') ? "&" : "?";
	if (spec->both_ends && l->total < 0)
		l->r.next_end_offset = PG_INT64_MAX / 2;	/* the oldest end until the total is known */
	lister_submit(run, l);
}

/* The request the listing needs next. */
static int
lister_head(const Lister *l)
{
	return l->r.ids[l->r.head];
}

/* Wait for the listing's next answer (at once if it is in), write it, and ask for more. */
static void
lister_step(ClerkRun *run, Lister *l)
{
	const ListSpec *spec = l->spec;
	PageRing   *r = &l->r;
	int			limit = r->limit;
	bool		newest_first = spec->stop_field != NULL;
	ClerkHttpResult res;
	PageArgs	a = {0};
	int			h = r->head;

	Assert(!l->done);
	wait_answer(run, r->ids[h], &res);
	if (res.error == NULL && res.status == 404 && spec->allow_404 && r->offsets[h] == 0 &&
		run->counts[spec->entity].fetched == l->before)
	{
		l->outcome = LIST_NOT_FOUND;
		l->done = true;
		return;
	}
	clerk_http_check(&res, r->paths[h]);

	/* the next page goes out before this one is written (the head is in hand) */
	if (l->allowed > 1 && r->inflight - 1 < l->allowed && !asked_all(spec, r, l->total))
	{
		submit_next(run, spec, r);
		clerk_http_pump(run->http);
	}

	write_answer(run, spec, &res, r->paths[h], r->ids[h], !run->incremental,
				 newest_first, &a);
	if (!newest_first && a.total >= 0)
	{
		l->total = a.total;
		if (spec->both_ends && r->next_end_offset > l->total)
			r->next_end_offset = 0;
	}
	l->allowed = l->depth;
	if (a.count < limit)
		l->done = true;			/* the end of the list (from either end) */
	if (newest_first && a.min_ms >= 0 && a.min_ms < spec->since_ms)
		l->done = true;
	if (spec->both_ends && a.count > 0)
	{
		if (r->from_end[h])
			l->end_oldest = l->end_oldest < 0 ? a.min_created_ms : Min(l->end_oldest, a.min_created_ms);
		else
			l->front_newest = Max(l->front_newest, a.max_created_ms);
	}

	/*
	 * Newest first, every page after the first must hold an object of the
	 * pages before it: if none, objects before it went away while the list
	 * was read, the list moved up, and objects may have slid past the
	 * boundary unseen.  Step back a page and read on from there.
	 */
	if (newest_first && !seen_any(l->seen, a.ids) && r->offsets[h] > 0 && a.ids != NIL)
	{
		if (++l->shifts > MAX_SHIFT_REPAIRS)
			ereport(ERROR,
					(errcode(CLERK_ERRCODE_API_ERROR),
					 errmsg("Clerk's listing of %s kept moving while it was read", spec->path),
					 errdetail("Pages of a newest-first listing stopped overlapping %d times.", MAX_SHIFT_REPAIRS),
					 errhint("Run clerk_sync_all(), which does not depend on the listing standing still.")));
		run->shifts_repaired++;
		r->next_offset = Max(0, r->offsets[h] - r->step);
		l->done = false;
	}
	r->head = (r->head + 1) % r->ring;
	r->inflight--;
	page_done(run, spec->entity, l->before);

	if (!l->done && spec->give_up && spec->give_up(run, r->offsets[h], res.latency_ms, l->total))
	{
		l->outcome = LIST_GAVE_UP;
		l->done = true;
		return;
	}

	/*
	 * Both ends, everything asked for is written: the halves must meet (the
	 * oldest end's newest object no older than the newest end's oldest); if
	 * objects added meanwhile pushed them apart, read on from the newest
	 * end.
	 */
	if (!l->done && spec->both_ends && r->inflight == 0 && asked_all(spec, r, l->total))
	{
		if (l->front_newest >= 0 && l->end_oldest >= 0 && l->front_newest < l->end_oldest)
			l->total += limit;
		else
			l->done = true;
	}
	if (!l->done)
		lister_submit(run, l);
}

/* The listing is over: pages asked for beyond the end are let go. */
static ListOutcome
lister_finish(ClerkRun *run, Lister *l)
{
	PageRing   *r = &l->r;

	while (r->inflight > 0)
	{
		clerk_http_release(run->http, r->ids[r->head]);
		r->head = (r->head + 1) % r->ring;
		r->inflight--;
	}
	for (int k = 0; k < r->ring; k++)
		if (r->paths[k])
			pfree(r->paths[k]);
	pfree(r->paths);
	pfree(r->from_end);
	pfree(r->offsets);
	pfree(r->ids);
	if (l->seen)
		hash_destroy(l->seen);
	return l->outcome;
}

/*
 * Walk one listing, `concurrency` pages in flight, writing each page.
 * Returns LIST_NOT_FOUND without writing anything if the first page is a
 * 404 and allow_404 is set (the endpoint is not available), LIST_GAVE_UP
 * when spec->give_up stopped it.
 */
static ListOutcome
list_pages(ClerkRun *run, const ListSpec *spec)
{
	Lister		l;

	lister_start(run, &l, spec);
	while (!l.done)
		lister_step(run, &l);
	return lister_finish(run, &l);
}

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

/* ---- users by cursor ---- */

/* at most this many created_at ranges are walked at once */
#define CURSOR_RANGES_MAX 32

/* One created_at range of users, walked with starting_after. */
typedef struct CursorRange
{
	int64		after;			/* created_at_after (exclusive), or -1 for none */
	int64		before;			/* created_at_before (exclusive), or -1: open, so new users land here */
	char	   *cursor;			/* the last id read, or NULL before the first page */
	char	   *path;			/* of the request in flight */
	int			req;			/* the request in flight */
	bool		next_asked;		/* the page after the one being written is asked for */
} CursorRange;

typedef struct EdgeArgs
{
	const ClerkHttpResult *res;
	const char *what;
	int64		created_ms;		/* out: created_at of the one user, or -1 */
	char	   *id;				/* out, in the run's context */
	MemoryContext mcxt;
} EdgeArgs;

static void
read_edge(void *varg)
{
	EdgeArgs   *e = (EdgeArgs *) varg;
	ClerkParsed page;
	JsonbValue *first;

	clerk_parse_answer(e->res, e->what, &page);
	e->created_ms = -1;
	if (JsonContainerSize(&page.objects->root) == 0)
		return;
	first = getIthJsonbValueFromContainer(&page.objects->root, 0);
	e->created_ms = clerk_json_ms(first->val.binary.data, "created_at", false);
	e->id = clerk_json_string(first->val.binary.data, "id");
	if (e->id != NULL)
		e->id = MemoryContextStrdup(e->mcxt, e->id);
}

/* The requests for the oldest and the newest user, asked for early. */
typedef struct UserEdges
{
	int			req[2];			/* [0] oldest, [1] newest */
	char	   *path[2];
} UserEdges;

static void
user_edges_submit(ClerkRun *run, UserEdges *edges)
{
	for (int newest = 0; newest < 2; newest++)
	{
		edges->path[newest] = psprintf("%s?limit=1&order_by=%screated_at", clerk_list_path(CLERK_USERS),
									   newest ? "-" : "");
		edges->req[newest] = clerk_http_submit(run->http, edges->path[newest]);
	}
}

/* created_at and id of the oldest or newest user; -1 when there is none. */
static int64
user_edge(ClerkRun *run, UserEdges *edges, bool newest, char **id)
{
	ClerkHttpResult res;
	EdgeArgs	e = {&res, edges->path[newest], -1, NULL, run->run_cxt};

	wait_answer(run, edges->req[newest], &res);
	clerk_http_check(&res, edges->path[newest]);
	clerk_in_transaction(read_edge, &e);
	clerk_http_release(run->http, edges->req[newest]);
	if (id)
		*id = e.id;
	return e.created_ms;
}

/* Ask for the range's next page (its path in the run's memory; the caller frees the last one). */
static void
submit_range(ClerkRun *run, CursorRange *r)
{
	MemoryContext old = MemoryContextSwitchTo(run->run_cxt);
	StringInfoData path;

	initStringInfo(&path);
	appendStringInfo(&path, "%s?limit=%d&order_by=created_at", clerk_list_path(CLERK_USERS),
					 run->settings.page_size);
	if (r->after >= 0)
		appendStringInfo(&path, "&created_at_after=" INT64_FORMAT, r->after);
	if (r->before >= 0)
		appendStringInfo(&path, "&created_at_before=" INT64_FORMAT, r->before);
	if (r->cursor != NULL)
		appendStringInfo(&path, "&starting_after=%s", r->cursor);
	r->path = path.data;
	r->req = clerk_http_submit(run->http, r->path);
	MemoryContextSwitchTo(old);
}

/*
 * A full page of a range is in: its last id is the cursor of the next page,
 * which is asked for now, before this one is converted and written, so that
 * the range's next answer is on its way while this one is written.
 */
static void
range_scanned(PageArgs *a, const ClerkParsed *page)
{
	CursorRange *r = (CursorRange *) a->hook_arg;
	int			i;

	r->next_asked = false;
	if (page->nelems < a->run->settings.page_size)
		return;					/* a short page ends the range */
	for (i = page->nelems - 1; i >= 0; i--)
	{
		char	   *id = clerk_parsed_element_id(page, i);

		if (clerk_plain_id(id))
		{
			/* a server that ignores starting_after would answer the same page forever */
			if (r->cursor != NULL && strcmp(r->cursor, id) == 0)
				ereport(ERROR,
						(errcode(CLERK_ERRCODE_API_ERROR),
						 errmsg("Clerk's listing of users did not move past the cursor %s", id),
						 errdetail("The page asked for with starting_after=%s ends with that same user.", id),
						 errhint("The API seems to ignore starting_after; check clerk_sync.api_url.")));
			if (r->cursor != NULL)
				pfree(r->cursor);
			r->cursor = MemoryContextStrdup(a->run->run_cxt, id);
			submit_range(a->run, r);
			r->next_asked = true;
			return;
		}
	}
}

/*
 * The full listing of users with cursors: the created_at span is cut into
 * clerk_sync.concurrency disjoint ranges, each walked with starting_after,
 * one request of each in flight, so that no page costs more than the first
 * however far into the list it is.  The last range is open at the top: users
 * created during the run land in it (or in the next run); none is read
 * twice, none skipped.  Returns false, having listed nothing, if the API
 * refuses cursors or created_at filters (an older API version answers 422):
 * the caller pages by offset instead.
 */
static bool
list_users_by_cursor(ClerkRun *run, UserEdges *edges, Lister *side)
{
	ListSpec	spec = {.entity = CLERK_USERS, .path = clerk_list_path(CLERK_USERS),
	.order_by = "created_at", .concurrency = 1, .total_hint = -1};
	int			limit = run->settings.page_size;
	char	   *first_id;
	int64		first = user_edge(run, edges, false, &first_id);
	int64		last = user_edge(run, edges, true, NULL);
	int			n,
				k,
				live;
	CursorRange *ranges;
	int		   *fifo;
	int			fifo_head = 0,
				fifo_len = 0;
	ClerkHttpResult probe;
	char	   *probe_path;
	int64		before = run->counts[CLERK_USERS].fetched;

	if (first < 0 || first_id == NULL || !clerk_plain_id(first_id))
		return first < 0;		/* no users: nothing to list (else: let offset paging try) */

	/* does the API take a cursor and created_at filters? */
	probe_path = psprintf("%s?limit=1&order_by=created_at&created_at_after=" INT64_FORMAT "&starting_after=%s",
						  clerk_list_path(CLERK_USERS), first - 1, first_id);
	clerk_http_get(run->http, probe_path, &probe);
	if (probe.error == NULL && probe.status == 200 && probe.body != NULL &&
		strstr(probe.body, psprintf("\"%s\"", first_id)) != NULL)
	{
		/* the cursor's own user is in the answer: starting_after was ignored */
		run->users_paging = pstrdup("offset: the API ignored starting_after");
		clerk_run_message(run, "users: the API ignores cursor paging; listing by offset in this run");
		return false;
	}
	if (probe.error == NULL && (probe.status == 422 || probe.status == 400))
	{
		run->users_paging = psprintf("offset: the API answered HTTP %ld to a starting_after request", probe.status);
		clerk_run_message(run, "users: the API refuses cursor paging (HTTP %ld); listing by offset in this run",
						  probe.status);
		return false;
	}
	clerk_http_check(&probe, probe_path);

	/*
	 * As many ranges as requests may run at once, each of two pages or
	 * more: a range costs one request more than its pages (the short one
	 * that ends it), worth it only when it saves a round trip.
	 */
	n = Max(1, Min(run->settings.concurrency, CURSOR_RANGES_MAX));
	if (run->users_total_hint >= 0)
		n = (int) Max(1, Min(n, run->users_total_hint / ((int64) limit * 2)));
	ranges = palloc0(sizeof(CursorRange) * n);
	fifo = palloc(sizeof(int) * n);
	for (k = 0; k < n; k++)
	{
		int64		lo = first + (int64) ((double) (last - first + 1) * k / n);
		int64		hi = first + (int64) ((double) (last - first + 1) * (k + 1) / n);

		/* range k holds created_at in [lo, hi): after lo - 1, before hi */
		ranges[k].after = k == 0 ? -1 : lo - 1;
		ranges[k].before = k == n - 1 ? -1 : hi;
		submit_range(run, &ranges[k]);
		fifo[(fifo_head + fifo_len++) % n] = k;
	}
	run->users_paging = psprintf("cursor: %d created_at range%s walked at once", n, n == 1 ? "" : "s");

	live = n;
	while (live > 0)
	{
		ClerkHttpResult res;
		PageArgs	a = {0};
		CursorRange *r;
		char	   *path;
		int			req;

		k = fifo[fifo_head];
		r = &ranges[k];
		/* the listing walked side by side goes on whenever its answer is in first */
		if (side != NULL && !side->done)
		{
			int			ids[2] = {r->req, lister_head(side)};

			if (wait_first(run, ids, 2) == 1)
			{
				lister_step(run, side);
				continue;
			}
		}
		fifo_head = (fifo_head + 1) % n;
		fifo_len--;
		path = r->path;
		req = r->req;

		clerk_http_pump(run->http);
		wait_answer(run, req, &res);
		clerk_http_check(&res, path);

		a.scanned = range_scanned;
		a.hook_arg = r;
		write_answer(run, &spec, &res, path, req, true, false, &a);
		pfree(path);

		if (r->next_asked)
			fifo[(fifo_head + fifo_len++) % n] = k;
		else
			live--;
		page_done(run, CLERK_USERS, before);
	}
	return true;
}

/* ---- memberships ---- */

/* One organization's page of memberships in flight. */
typedef struct OrgPage
{
	int			org;			/* index in the list of organizations */
	int64		offset;
	int			req;
	char	   *path;
} OrgPage;

/*
 * The memberships of each organization (rows: id), the organizations'
 * listings walked side by side: up to twice clerk_sync.concurrency pages
 * asked for at once (the HTTP client runs as many as its window allows),
 * so that the cost is one round trip per organization spread over the
 * connections, bounded by the rate limit.  An organization deleted
 * meanwhile answers 404, on any page: it has no members left.
 */
static void
list_per_organization(ClerkRun *run, List *orgs)
{
	int			limit = run->settings.page_size;
	int			depth = Max(1, run->settings.concurrency * 2);
	int			norgs = list_length(orgs);
	int			next_org = 0;
	OrgPage    *ring = palloc0(sizeof(OrgPage) * (depth + 1));
	int			head = 0,
				inflight = 0;
	int64		before = run->counts[CLERK_MEMBERSHIPS].fetched;
	ListSpec	spec = {.entity = CLERK_MEMBERSHIPS, .order_by = "created_at", .concurrency = 1,
	.total_hint = -1};

	for (;;)
	{
		ClerkHttpResult res;
		PageArgs	a = {0};
		OrgPage    *p;

		/* start on the next organizations while there is room */
		while (inflight < depth && next_org < norgs)
		{
			char	   *org = ((char **) list_nth(orgs, next_org))[0];

			if (clerk_plain_id(org))
			{
				OrgPage    *q = &ring[(head + inflight) % (depth + 1)];
				char	   *base = clerk_org_memberships_path(org);

				q->org = next_org;
				q->offset = 0;
				q->path = psprintf("%s?limit=%d&offset=0&order_by=created_at", base, limit);
				q->req = clerk_http_submit(run->http, q->path);
				pfree(base);
				inflight++;
			}
			next_org++;
		}
		if (inflight == 0)
			break;
		clerk_http_pump(run->http);

		p = &ring[head];
		wait_answer(run, p->req, &res);
		head = (head + 1) % (depth + 1);
		inflight--;
		if (res.error == NULL && res.status == 404)
		{
			clerk_http_release(run->http, p->req);
			pfree(p->path);
			continue;
		}
		clerk_http_check(&res, p->path);
		spec.path = p->path;
		write_answer(run, &spec, &res, p->path, p->req, !run->incremental, false, &a);
		if (a.count >= limit)
		{
			/* a full page: this organization has more */
			OrgPage    *q = &ring[(head + inflight) % (depth + 1)];
			char	   *org = ((char **) list_nth(orgs, p->org))[0];
			char	   *base = clerk_org_memberships_path(org);

			q->org = p->org;
			q->offset = p->offset + limit;
			q->path = psprintf("%s?limit=%d&offset=" INT64_FORMAT "&order_by=created_at",
							   base, limit, q->offset);
			q->req = clerk_http_submit(run->http, q->path);
			pfree(base);
			inflight++;
		}
		pfree(p->path);
		page_done(run, CLERK_MEMBERSHIPS, before);
	}
	pfree(ring);
}

/*
 * Listing strategy for memberships (see README, "What a run does"): the
 * instance-wide listing has no cursor, so its cost depends on how the
 * server handles offsets.  While it is read, the latency of its pages is
 * set against a probe's, a one-object page at offset 0 asked for every few
 * pages under the same load: the difference, per skipped row, is what
 * depth costs (and congestion, which slows the probe as much, is not taken
 * for it).  With that model (latency = probe + cost per row * offset), the
 * time the rest of the instance-wide listing would take is weighed against
 * listing each organization (one request each at offset 0), both bounded
 * by the concurrency and the rate limit; the listing gives up for the
 * other when that is clearly cheaper.
 */
#define MODEL_MIN_SAMPLES 4		/* deep pages seen before deciding */
#define MODEL_MARGIN 0.75		/* per organization must cost less than this share */
#define MODEL_PROBE_EVERY 8		/* pages between two probes */

typedef struct MembershipModel
{
	double		base_ms;		/* the latest probe's latency, or -1 */
	int			probe_req;		/* the probe in flight, or -1 */
	int			pages_since_probe;
	double		per_row_ms[MODEL_MIN_SAMPLES];	/* the latest estimates of the cost per skipped row */
	int			nsamples;
	int64		org_requests;	/* what listing per organization would ask */
	char	   *why;
} MembershipModel;

static MembershipModel membership_model;

/* Estimated ms to make n requests of mean latency lat_ms each, with the run's concurrency and rate limit. */
static double
requests_ms(ClerkRun *run, double n, double lat_ms)
{
	double		conc = Max(1, Min(run->settings.concurrency, run->settings.rate_limit));
	double		per_s = run->settings.rate_limit / 10.0;

	return Max(n * lat_ms / conc, n / per_s * 1000.0);
}

/* Read the probe's answer if it is in; ask for the next one when it is time. */
static void
model_probe(ClerkRun *run, MembershipModel *m)
{
	ClerkHttpResult res;

	if (m->probe_req >= 0 && clerk_http_poll(run->http, m->probe_req, &res))
	{
		if (res.error == NULL && res.status == 200)
			m->base_ms = res.latency_ms;
		clerk_http_release(run->http, m->probe_req);
		m->probe_req = -1;
	}
	if (m->probe_req < 0 && (m->base_ms < 0 || m->pages_since_probe >= MODEL_PROBE_EVERY))
	{
		char	   *path = psprintf("%s?limit=1&offset=0&order_by=created_at",
									clerk_list_path(CLERK_MEMBERSHIPS));

		m->probe_req = clerk_http_submit(run->http, path);
		m->pages_since_probe = 0;
		pfree(path);
	}
	m->pages_since_probe++;
}

static bool
memberships_give_up(ClerkRun *run, int64 offset, double latency_ms, int64 total)
{
	MembershipModel *m = &membership_model;
	int			limit = run->settings.page_size;
	double		per_row = 0;
	double		deepest,
				pages_left,
				mean_offset,
				inst_ms,
				org_ms;

	model_probe(run, m);
	if (m->base_ms < 0 || total < 0 || offset < 4 * limit)
		return false;
	m->per_row_ms[m->nsamples++ % MODEL_MIN_SAMPLES] = Max(0, (latency_ms - m->base_ms) / offset);
	if (m->nsamples < MODEL_MIN_SAMPLES)
		return false;
	for (int i = 0; i < MODEL_MIN_SAMPLES; i++)
		per_row += m->per_row_ms[i] / MODEL_MIN_SAMPLES;

	/* from both ends, no offset goes deeper than half the list */
	deepest = total / 2.0;
	pages_left = Max(0, 2.0 * (deepest - offset) / limit);
	mean_offset = (offset + deepest) / 2.0;
	inst_ms = requests_ms(run, pages_left, m->base_ms + per_row * mean_offset);
	org_ms = requests_ms(run, (double) m->org_requests, m->base_ms);
	if (org_ms >= MODEL_MARGIN * inst_ms)
		return false;
	m->why = psprintf("per organization: the instance-wide listing was left at offset " INT64_FORMAT
					  " (latency %.0f ms + %.1f us per skipped row; the rest estimated at %.0f s, "
					  INT64_FORMAT " requests per organization at %.0f s)",
					  offset, m->base_ms, per_row * 1000, inst_ms / 1000, m->org_requests, org_ms / 1000);
	return true;
}

/* The memberships listing (see sync_memberships), kept for the run. */
static ListSpec membership_spec;

/* Start listing memberships: instance-wide, newest first in an incremental run, else from both ends. */
static void
memberships_begin(ClerkRun *run, Lister *l)
{
	ListSpec   *spec = &membership_spec;

	*spec = instance_listing(run, CLERK_MEMBERSHIPS);
	spec->allow_404 = true;		/* then each organization is asked */
	memset(&membership_model, 0, sizeof(membership_model));
	membership_model.base_ms = -1;
	membership_model.probe_req = -1;
	if (run->incremental)
	{
		/* newest first; memberships made since the mark are at the front */
		spec->order_by = "-created_at";
		spec->stop_field = "created_at";
		spec->since_ms = run->since_ms;
		spec->concurrency = 1;
	}
	else
	{
		List	   *rows = query_rows(run, psprintf("SELECT sum(greatest(1, ceil(coalesce(members_count, 0)::numeric / %d)))::int8 "
													"FROM clerk.organizations WHERE deleted_at IS NULL",
													run->settings.page_size));
		char	   *v = rows != NIL ? ((char **) linitial(rows))[0] : NULL;

		membership_model.org_requests = v ? strtoll(v, NULL, 10) : 0;
		spec->both_ends = true;
		spec->give_up = memberships_give_up;
	}
	lister_start(run, l, spec);
}

/*
 * Finish listing memberships: the instance-wide listing to its end, then,
 * if it is not there or gave up, each organization's.
 */
static void
memberships_end(ClerkRun *run, Lister *l)
{
	List	   *orgs;
	ListOutcome outcome;

	clerk_run_phase(run, "memberships", -1);
	while (!l->done)
		lister_step(run, l);
	outcome = lister_finish(run, l);
	if (membership_model.probe_req >= 0)
		clerk_http_release(run->http, membership_model.probe_req);
	if (outcome == LIST_DONE)
	{
		run->memberships_paging = pstrdup(run->incremental ? "instance-wide, newest first" :
										  "instance-wide, from both ends");
		return;
	}

	if (outcome == LIST_GAVE_UP)
	{
		/* the per-organization listing reads these again; stats say how many */
		run->memberships_reread = run->counts[CLERK_MEMBERSHIPS].fetched;
		run->memberships_paging = membership_model.why;
		clerk_run_message(run, "memberships: %s", membership_model.why);
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
	list_per_organization(run, orgs);
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
 * Ask Clerk about each candidate; those it confirms gone are soft-deleted
 * (or, in a dry run, counted).  Candidates rows: id [, organization_id,
 * user_id].
 */
static void
confirm_and_delete(ClerkRun *run, ClerkEntity e, List *candidates)
{
	int			n = list_length(candidates);
	int			start;

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
		clerk_http_get_many(run->http, m, paths, results);
		for (k = 0; k < m; k++)
		{
			bool		is_gone = false;

			if (results[k].error == NULL && results[k].status == 404)
				is_gone = true;
			else
			{
				clerk_http_check(&results[k], paths[k]);
				if (e == CLERK_MEMBERSHIPS)
				{
					/* the organization lists this user's membership, or not */
					char	   *needle = psprintf("\"%s\"", ids[k]);

					is_gone = strstr(results[k].body, needle) == NULL;
				}
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
	int			e;

	clerk_run_phase(run, "deleting", -1);
	for (e = 0; e < CLERK_NENTITIES; e++)
	{
		const char *table = clerk_entity_table(e);
		List	   *rows;

		rows = query_rows(run, psprintf("SELECT count(*) FROM %s WHERE deleted_at IS NULL", table));
		active[e] = strtoll(((char **) linitial(rows))[0], NULL, 10);
		candidates[e] = query_rows(run, psprintf(
												 "WITH seen AS (SELECT unnest(ids) AS id FROM pg_temp.clerk_seen WHERE entity = '%s') "
												 "SELECT t.id%s FROM %s t WHERE t.deleted_at IS NULL AND NOT EXISTS "
												 "(SELECT 1 FROM seen s WHERE s.id = t.id) "
												 "ORDER BY t.id",
												 clerk_entity_name(e),
												 e == CLERK_MEMBERSHIPS ? ", t.organization_id, t.user_id" : "",
												 table));
		if (list_length(candidates[e]) > 0 &&
			list_length(candidates[e]) > run->settings.max_delete_fraction * active[e])
		{
			run->deletion_note = psprintf("skipped: %d of " INT64_FORMAT " %s are missing from Clerk's listing, more than clerk_sync.max_delete_fraction (%g); nothing was deleted",
										  list_length(candidates[e]), active[e],
										  clerk_entity_name(e), run->settings.max_delete_fraction);
			clerk_run_message(run, "deletion %s", run->deletion_note);
			return;
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
		if (checkable != NIL)
		{
			clerk_run_message(run, "%s: %d missing from the listing, confirming with Clerk",
							  clerk_entity_name(e), list_length(checkable));
			confirm_and_delete(run, e, checkable);
		}
	}
	run->deletion_note = pstrdup(run->dry_run ? "dry run: counted, nothing deleted" : "done");
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

void
clerk_sync_execute(ClerkRun *run)
{
	ClerkHttpConfig config;
	ClerkHttpResult res;
	bool		full_listing;
	ListSpec	users = instance_listing(run, CLERK_USERS);
	ListSpec	orgs = instance_listing(run, CLERK_ORGANIZATIONS);
	Lister		memberships;
	UserEdges	edges;
	int			count_req;

	run->started_ms = GetCurrentTimestamp() / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	config.api_url = run->settings.api_url;
	config.secret_key = run->settings.secret_key;
	config.timeout_ms = run->settings.request_timeout;
	config.max_retries = run->settings.max_retries;
	config.retry_backoff_ms = run->settings.retry_backoff;
	config.rate_limit = run->settings.rate_limit;
	config.concurrency = run->settings.concurrency;
	PG_TRY();
	{
		run->http = clerk_http_create(run->run_cxt, &config);
	}
	PG_FINALLY();
	{
		explicit_bzero(run->settings.secret_key, sizeof(run->settings.secret_key));
	}
	PG_END_TRY();

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
		user_edges_submit(run, &edges);
	clerk_run_message(run, "organizations: listing");
	(void) list_pages(run, &orgs);
	phase_message(run, CLERK_ORGANIZATIONS);

	/* users */
	clerk_run_phase(run, "users", -1);
	wait_answer(run, count_req, &res);
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
	 * are listed by cursor, goes on side by side with it: whichever answer is in first is
	 * written first, so that the latency of deep membership pages is spent
	 * while users are written.
	 */
	if (full_listing)
	{
		clerk_run_message(run, "memberships: listing");
		memberships_begin(run, &memberships);
		users.total_hint = run->users_total_hint;
		if (!list_users_by_cursor(run, &edges, &memberships))
			(void) list_pages(run, &users);
	}
	else
	{
		users.order_by = "-updated_at";
		users.stop_field = "updated_at";
		users.since_ms = run->since_ms;
		users.concurrency = 1;
		(void) list_pages(run, &users);
		clerk_run_message(run, "memberships: listing");
		memberships_begin(run, &memberships);
	}
	phase_message(run, CLERK_USERS);

	memberships_end(run, &memberships);
	phase_message(run, CLERK_MEMBERSHIPS);

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
