/*
 * listing.c
 *		How an entity is listed from Clerk, page by page.
 *
 * A listing (ClerkListSpec) is walked by offset with its pages in flight
 * at once, newest first down to a mark, or from both ends.  Users are also
 * listed by cursor over created_at ranges; memberships also per
 * organization, and a model of the instance-wide listing's latency tells
 * when that is cheaper.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "clerk_api.h"
#include "json_members.h"
#include "listing.h"
#include "transaction.h"

/* how often (in pages) a waiting caller hears how far the run is */
#define MESSAGE_EVERY_PAGES 5

ClerkListSpec
clerk_instance_listing(ClerkRun *run, ClerkEntity entity)
{
	return (ClerkListSpec) {.entity = entity, .path = clerk_list_path(entity), .order_by = "created_at",
	.concurrency = run->settings.concurrency, .total_hint = -1};
}

/* ---- writing one page ---- */

typedef struct PageArgs PageArgs;

struct PageArgs
{
	ClerkRun   *run;
	const ClerkListSpec *spec;
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

void
clerk_wait_answer(ClerkRun *run, int req, ClerkHttpResult *res)
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
write_answer(ClerkRun *run, const ClerkListSpec *spec, const ClerkHttpResult *res, const char *what,
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
submit_next(ClerkRun *run, const ClerkListSpec *spec, PageRing *r)
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
asked_all(const ClerkListSpec *spec, const PageRing *r, int64 total)
{
	if (total < 0)
		return false;
	if (spec->both_ends)
		return r->next_offset + r->next_end_offset >= total + r->limit;
	return r->next_offset > total;
}

/*
 * One listing in progress: clerk_list_pages() walks it to the end; a caller
 * that walks another listing at the same time (see
 * clerk_list_users_by_cursor) steps it whenever its next answer is in.
 */
struct ClerkLister
{
	const ClerkListSpec *spec;
	PageRing	r;
	int			depth;			/* pages asked for ahead */
	int			allowed;		/* pages that may be asked for now */
	int64		total;			/* objects in the list, or -1 while unknown */
	int64		before;			/* fetched before this listing */
	HTAB	   *seen;			/* newest first: the ids seen, to check that pages overlap */
	int			shifts;
	int64		front_newest;	/* both_ends: the newest created_at read from the oldest end */
	int64		end_oldest;		/* and the oldest read from the newest end */
	int64		written;		/* pages of this listing written */
	bool		done;
	ClerkListOutcome outcome;
};

/* Ask for the pages that may be asked for now. */
static void
lister_submit(ClerkRun *run, ClerkLister *l)
{
	/* (the list can outgrow its total while it is read: then go on) */
	while (l->r.inflight < l->allowed && (!asked_all(l->spec, &l->r, l->total) || l->r.inflight == 0))
		submit_next(run, l->spec, &l->r);
	clerk_http_pump(run->http);
}

static void
lister_start(ClerkRun *run, ClerkLister *l, const ClerkListSpec *spec)
{
	int			limit = run->settings.page_size;
	bool		newest_first = spec->stop_field != NULL;
	/* newest first, pages overlap by this much (see ClerkListSpec) */
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
	l->outcome = CLERK_LIST_DONE;

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
lister_head(const ClerkLister *l)
{
	return l->r.ids[l->r.head];
}

/* Wait for the listing's next answer (at once if it is in), write it, and ask for more. */
static void
lister_step(ClerkRun *run, ClerkLister *l)
{
	const ClerkListSpec *spec = l->spec;
	PageRing   *r = &l->r;
	int			limit = r->limit;
	bool		newest_first = spec->stop_field != NULL;
	ClerkHttpResult res;
	PageArgs	a = {0};
	int			h = r->head;

	Assert(!l->done);
	clerk_wait_answer(run, r->ids[h], &res);
	if (r->offsets[h] == 0 && l->written == 0 &&
		((res.error == NULL && res.status == 404 && spec->allow_404) ||
		 ((res.status == 404 || res.status == 403) && spec->optional)))
	{
		l->outcome = CLERK_LIST_NOT_FOUND;
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
	l->written++;
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
		l->outcome = CLERK_LIST_GAVE_UP;
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
static ClerkListOutcome
lister_finish(ClerkRun *run, ClerkLister *l)
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

void
clerk_list_side_by_side(ClerkRun *run, const ClerkListSpec *specs, int n, ClerkListOutcome *outcomes)
{
	ClerkLister *l = palloc(sizeof(ClerkLister) * n);
	int		   *heads = palloc(sizeof(int) * n);
	int		   *which = palloc(sizeof(int) * n);

	for (int i = 0; i < n; i++)
		lister_start(run, &l[i], &specs[i]);
	for (;;)
	{
		int			live = 0;

		for (int i = 0; i < n; i++)
			if (!l[i].done)
			{
				heads[live] = lister_head(&l[i]);
				which[live++] = i;
			}
		if (live == 0)
			break;
		lister_step(run, &l[which[live == 1 ? 0 : wait_first(run, heads, live)]]);
	}
	for (int i = 0; i < n; i++)
		outcomes[i] = lister_finish(run, &l[i]);
	pfree(which);
	pfree(heads);
	pfree(l);
}

ClerkListOutcome
clerk_list_pages(ClerkRun *run, const ClerkListSpec *spec)
{
	ClerkListOutcome outcome;

	clerk_list_side_by_side(run, spec, 1, &outcome);
	return outcome;
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
struct ClerkUserEdges
{
	int			req[2];			/* [0] oldest, [1] newest */
	char	   *path[2];
};

ClerkUserEdges *
clerk_user_edges_submit(ClerkRun *run)
{
	ClerkUserEdges *edges = palloc(sizeof(ClerkUserEdges));

	for (int newest = 0; newest < 2; newest++)
	{
		edges->path[newest] = psprintf("%s?limit=1&order_by=%screated_at", clerk_list_path(CLERK_USERS),
									   newest ? "-" : "");
		edges->req[newest] = clerk_http_submit(run->http, edges->path[newest]);
	}
	return edges;
}

/* created_at and id of the oldest or newest user; -1 when there is none. */
static int64
user_edge(ClerkRun *run, ClerkUserEdges *edges, bool newest, char **id)
{
	ClerkHttpResult res;
	EdgeArgs	e = {&res, edges->path[newest], -1, NULL, run->run_cxt};

	clerk_wait_answer(run, edges->req[newest], &res);
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
 * refuses cursors or created_at filters (an older API version answers 422)
 * or ignores them: the caller pages by offset instead.  The listing `side`
 * (if not NULL) goes on meanwhile, a page whenever its answer is in first.
 */
bool
clerk_list_users_by_cursor(ClerkRun *run, ClerkUserEdges *edges, ClerkLister *side)
{
	ClerkListSpec spec = {.entity = CLERK_USERS, .path = clerk_list_path(CLERK_USERS),
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
		clerk_wait_answer(run, req, &res);
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

/* Ask for the page at `offset` of the memberships of org_id (number org in the list), into *q. */
static void
submit_org_page(ClerkRun *run, OrgPage *q, int org, const char *org_id, int64 offset)
{
	char	   *base = clerk_org_memberships_path(org_id);

	q->org = org;
	q->offset = offset;
	q->path = psprintf("%s?limit=%d&offset=" INT64_FORMAT "&order_by=created_at",
					   base, run->settings.page_size, offset);
	q->req = clerk_http_submit(run->http, q->path);
	pfree(base);
}

/*
 * The memberships of each organization (rows: id), the organizations'
 * listings walked side by side: up to twice clerk_sync.concurrency pages
 * asked for at once (the HTTP client runs as many as its window allows),
 * so that the cost is one round trip per organization spread over the
 * connections, bounded by the rate limit.  An organization deleted
 * meanwhile answers 404, on any page: it has no members left.
 */
void
clerk_list_per_organization(ClerkRun *run, List *orgs)
{
	int			limit = run->settings.page_size;
	int			depth = Max(1, run->settings.concurrency * 2);
	int			norgs = list_length(orgs);
	int			next_org = 0;
	OrgPage    *ring = palloc0(sizeof(OrgPage) * (depth + 1));
	int			head = 0,
				inflight = 0;
	int64		before = run->counts[CLERK_MEMBERSHIPS].fetched;
	ClerkListSpec spec = {.entity = CLERK_MEMBERSHIPS, .order_by = "created_at", .concurrency = 1,
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
				submit_org_page(run, &ring[(head + inflight) % (depth + 1)], next_org, org, 0);
				inflight++;
			}
			next_org++;
		}
		if (inflight == 0)
			break;
		clerk_http_pump(run->http);

		p = &ring[head];
		clerk_wait_answer(run, p->req, &res);
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
			submit_org_page(run, &ring[(head + inflight) % (depth + 1)], p->org,
							((char **) list_nth(orgs, p->org))[0], p->offset + limit);
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

/* The memberships listing, kept for the run (its lister points to it). */
static ClerkListSpec membership_spec;

ClerkLister *
clerk_memberships_begin(ClerkRun *run, int64 org_requests)
{
	ClerkListSpec *spec = &membership_spec;
	ClerkLister *l = palloc(sizeof(ClerkLister));

	*spec = clerk_instance_listing(run, CLERK_MEMBERSHIPS);
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
		membership_model.org_requests = org_requests;
		spec->both_ends = true;
		spec->give_up = memberships_give_up;
	}
	lister_start(run, l, spec);
	return l;
}

ClerkListOutcome
clerk_memberships_end(ClerkRun *run, ClerkLister *l, char **why)
{
	ClerkListOutcome outcome;

	while (!l->done)
		lister_step(run, l);
	outcome = lister_finish(run, l);
	pfree(l);
	if (membership_model.probe_req >= 0)
		clerk_http_release(run->http, membership_model.probe_req);
	if (outcome == CLERK_LIST_GAVE_UP)
		*why = membership_model.why;
	return outcome;
}
