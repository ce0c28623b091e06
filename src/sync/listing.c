/*
 * listing.c
 *		How an entity is listed from Clerk, page by page.
 *
 * A listing (ClerkListSpec) is walked by offset with its pages in flight
 * at once, newest first down to a mark, or from both ends.  Users are also
 * listed by cursor (users_by_cursor.c), memberships per organization
 * (memberships.c); both build on the page writing and the listers here.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "clerk/clerk_api.h"
#include "clerk/json_members.h"
#include "store/transaction.h"
#include "sync/listing.h"

/* how often (in pages) a waiting caller hears how far the run is */
#define MESSAGE_EVERY_PAGES 5

ClerkListSpec
clerk_instance_listing(ClerkRun *run, ClerkEntity entity)
{
	return (ClerkListSpec) {.entity = entity, .path = clerk_list_path(entity),
		.order_by = clerk_list_has_order(entity) ? "created_at" : NULL,
	.concurrency = run->settings.concurrency, .total_hint = -1};
}

/* ---- writing one page ---- */


static void
write_page(void *varg)
{
	ClerkPageArgs   *a = (ClerkPageArgs *) varg;
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
int
clerk_wait_first(ClerkRun *run, const int *reqs, int n)
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
	(void) clerk_wait_first(run, &req, 1);
	clerk_http_wait(run->http, req, res);
}

/* After each page: the progress shown, and every few pages a message. */
void
clerk_page_done(ClerkRun *run, ClerkEntity entity, int64 fetched_before)
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
void
clerk_write_answer(ClerkRun *run, const ClerkListSpec *spec, const ClerkHttpResult *res, const char *what,
			 int req, bool track_seen, bool want_ids, ClerkPageArgs *a)
{
	instr_time	t0,
				t1;

	/* the caller's hook stays; every other field is filled here */
	*a = (ClerkPageArgs) {.run = run, .spec = spec, .res = res, .what = what, .track_seen = track_seen,
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
	r->paths[k] = spec->order_by == NULL ?
		psprintf("%s%slimit=%d&offset=" INT64_FORMAT, spec->path, r->sep, r->limit, offset) :
		psprintf("%s%slimit=%d&offset=" INT64_FORMAT "&order_by=%s%s",
				 spec->path, r->sep, r->limit, offset, from_end ? "-" : "", spec->order_by);
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

void
clerk_lister_start(ClerkRun *run, ClerkLister *l, const ClerkListSpec *spec)
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
int
clerk_lister_head(const ClerkLister *l)
{
	return l->r.ids[l->r.head];
}

/* Wait for the listing's next answer (at once if it is in), write it, and ask for more. */
void
clerk_lister_step(ClerkRun *run, ClerkLister *l)
{
	const ClerkListSpec *spec = l->spec;
	PageRing   *r = &l->r;
	int			limit = r->limit;
	bool		newest_first = spec->stop_field != NULL;
	ClerkHttpResult res;
	ClerkPageArgs	a = {0};
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

	clerk_write_answer(run, spec, &res, r->paths[h], r->ids[h], !run->incremental,
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
	clerk_page_done(run, spec->entity, l->before);

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
ClerkListOutcome
clerk_lister_finish(ClerkRun *run, ClerkLister *l)
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

ClerkLister *
clerk_lister_new(void)
{
	return palloc(sizeof(ClerkLister));
}

bool
clerk_lister_done(const ClerkLister *l)
{
	return l->done;
}

void
clerk_list_side_by_side(ClerkRun *run, const ClerkListSpec *specs, int n, ClerkListOutcome *outcomes)
{
	ClerkLister *l = palloc(sizeof(ClerkLister) * n);
	int		   *heads = palloc(sizeof(int) * n);
	int		   *which = palloc(sizeof(int) * n);

	for (int i = 0; i < n; i++)
		clerk_lister_start(run, &l[i], &specs[i]);
	for (;;)
	{
		int			live = 0;

		for (int i = 0; i < n; i++)
			if (!l[i].done)
			{
				heads[live] = clerk_lister_head(&l[i]);
				which[live++] = i;
			}
		if (live == 0)
			break;
		clerk_lister_step(run, &l[which[live == 1 ? 0 : clerk_wait_first(run, heads, live)]]);
	}
	for (int i = 0; i < n; i++)
		outcomes[i] = clerk_lister_finish(run, &l[i]);
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

/* ---- listings per parent ---- */

/* One parent's page in flight. */
typedef struct ParentPage
{
	int			parent;			/* index in the list of parents */
	int64		offset;
	int			req;
	char	   *path;
} ParentPage;

/* Ask for the page at `offset` of the listing of parent number `parent`, into *q. */
static void
submit_parent_page(ClerkRun *run, ClerkEntity entity, char *(*parent_path) (const char *id),
				   ParentPage *q, int parent, const char *parent_id, int64 offset)
{
	char	   *base = parent_path(parent_id);

	q->parent = parent;
	q->offset = offset;
	q->path = psprintf("%s%slimit=%d&offset=" INT64_FORMAT "%s", base, strchr(base, '?') ? "&" : "?",
					   run->settings.page_size, offset,
					   clerk_list_has_order(entity) ? "&order_by=created_at" : "");
	q->req = clerk_http_submit(run->http, q->path);
	pfree(base);
}

/*
 * The listings of each parent (rows: id) walked side by side: up to twice
 * clerk_sync.concurrency pages asked for at once (the HTTP client runs as
 * many as its window allows), so that the cost is one round trip per
 * parent spread over the connections, bounded by the rate limit.  A parent
 * deleted meanwhile answers 404, on any page: it has nothing left.
 */
void
clerk_list_per_parent(ClerkRun *run, ClerkEntity entity, List *parents,
					  char *(*parent_path) (const char *id), bool track_seen)
{
	int			limit = run->settings.page_size;
	int			depth = Max(1, run->settings.concurrency * 2);
	int			nparents = list_length(parents);
	int			next = 0;
	ParentPage *ring = palloc0(sizeof(ParentPage) * (depth + 1));
	int			head = 0,
				inflight = 0;
	int64		before = run->counts[entity].fetched;
	ClerkListSpec spec = {.entity = entity, .order_by = NULL, .concurrency = 1, .total_hint = -1};

	for (;;)
	{
		ClerkHttpResult res;
		ClerkPageArgs a = {0};
		ParentPage *p;

		/* start on the next parents while there is room */
		while (inflight < depth && next < nparents)
		{
			char	   *id = ((char **) list_nth(parents, next))[0];

			if (clerk_plain_id(id))
			{
				submit_parent_page(run, entity, parent_path, &ring[(head + inflight) % (depth + 1)],
								   next, id, 0);
				inflight++;
			}
			next++;
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
		clerk_write_answer(run, &spec, &res, p->path, p->req, track_seen, false, &a);
		if (a.count >= limit)
		{
			/* a full page: this parent has more */
			submit_parent_page(run, entity, parent_path, &ring[(head + inflight) % (depth + 1)],
							   p->parent, ((char **) list_nth(parents, p->parent))[0], p->offset + limit);
			inflight++;
		}
		pfree(p->path);
		clerk_page_done(run, entity, before);
	}
	pfree(ring);
}
