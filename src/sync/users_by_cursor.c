/*
 * users_by_cursor.c
 *		The full listing of users by cursor, over created_at ranges walked at once.
 *
 * The created_at span (from the oldest and the newest user) is cut into as
 * many ranges as may run at once, each walked with starting_after; a
 * range's next page is asked for as soon as its answer is scanned.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/memutils.h"

#include "clerk/clerk_api.h"
#include "clerk/json_members.h"
#include "store/transaction.h"
#include "sync/listing.h"

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
range_scanned(ClerkPageArgs *a, const ClerkParsed *page)
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
		ClerkPageArgs	a = {0};
		CursorRange *r;
		char	   *path;
		int			req;

		k = fifo[fifo_head];
		r = &ranges[k];
		/* the listing walked side by side goes on whenever its answer is in first */
		if (side != NULL && !clerk_lister_done(side))
		{
			int			ids[2] = {r->req, clerk_lister_head(side)};

			if (clerk_wait_first(run, ids, 2) == 1)
			{
				clerk_lister_step(run, side);
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
		clerk_write_answer(run, &spec, &res, path, req, true, false, &a);
		pfree(path);

		if (r->next_asked)
			fifo[(fifo_head + fifo_len++) % n] = k;
		else
			live--;
		clerk_page_done(run, CLERK_USERS, before);
	}
	return true;
}

