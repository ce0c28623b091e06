/*
 * listing.h
 *		How an entity is listed from Clerk, page by page.
 */
#ifndef CLERK_LISTING_H
#define CLERK_LISTING_H

#include "nodes/pg_list.h"

#include "clerk/http.h"
#include "store/store.h"
#include "sync/run.h"

/* One listing: what clerk_list_pages() walks. */
typedef struct ClerkListSpec
{
	ClerkEntity entity;
	const char *path;			/* may already carry a query string */
	const char *order_by;		/* NULL: the listing has one order, and takes none */
	/*
	 * With stop_field, the list is newest first and the walk stops after the
	 * first page holding an object whose stop_field is older than since_ms;
	 * pages then overlap, so that a shift of the list between two requests
	 * (objects deleted meanwhile) is seen and repaired.
	 */
	const char *stop_field;
	int64		since_ms;
	bool		allow_404;		/* a 404 at the first page: the endpoint is not there */
	bool		optional;		/* a 403 or 404 at the first page: not in the instance's plan */
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
} ClerkListSpec;

/* How a listing ended. */
typedef enum ClerkListOutcome
{
	CLERK_LIST_DONE,
	CLERK_LIST_NOT_FOUND,		/* allow_404 (or optional) and the first page said so */
	CLERK_LIST_GAVE_UP			/* give_up said so */
} ClerkListOutcome;

/* A listing in progress (its fields are listing.c's). */
typedef struct ClerkLister ClerkLister;

/* The requests for the oldest and the newest user, asked for early (listing.c's). */
typedef struct ClerkUserEdges ClerkUserEdges;

/* The instance-wide listing of an entity, oldest first, with the run's concurrency. */
extern ClerkListSpec clerk_instance_listing(ClerkRun *run, ClerkEntity entity);

/*
 * Walk one listing, `concurrency` pages in flight, writing each page.
 * Returns CLERK_LIST_NOT_FOUND without writing anything if the first page
 * is a 404 and allow_404 is set (the endpoint is not available),
 * CLERK_LIST_GAVE_UP when spec->give_up stopped it.
 */
extern ClerkListOutcome clerk_list_pages(ClerkRun *run, const ClerkListSpec *spec);

/*
 * Walk n listings side by side, each as clerk_list_pages() would, a page of
 * whichever answer is in first: their first pages cost one round trip
 * together, not one each.  Every listing's first page is asked for at once,
 * so n is a few (clerk_list_per_parent() walks thousands, with a
 * bounded queue).  outcomes[i] says how listing i ended.
 */
extern void clerk_list_side_by_side(ClerkRun *run, const ClerkListSpec *specs, int n,
									ClerkListOutcome *outcomes);

/*
 * The listing of `entity` under each parent of parents (rows: id; the
 * memberships of organizations, the payment attempts of statements), the
 * parents' listings walked side by side with a bounded queue; parent_path
 * makes a parent's listing path.  A parent that answers 404 has nothing.
 */
extern void clerk_list_per_parent(ClerkRun *run, ClerkEntity entity, List *parents,
								  char *(*parent_path) (const char *id), bool track_seen);

/* Wait for request `req` (the wait counted in the run's wait_ms) and fill *res. */
extern void clerk_wait_answer(ClerkRun *run, int req, ClerkHttpResult *res);

/* ---- for the listings built on these (users_by_cursor.c, memberships.c) ---- */

/* One page to write: what write_answer() is told, and what it learns. */
typedef struct ClerkPageArgs ClerkPageArgs;

struct ClerkPageArgs
{
	ClerkRun   *run;
	const ClerkListSpec *spec;
	const ClerkHttpResult *res;
	const char *what;			/* the request, for messages */
	bool		track_seen;
	bool		want_ids;
	/* called once the answer is scanned, before it is converted and written */
	void		(*scanned) (ClerkPageArgs *a, const ClerkParsed *page);
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

/* Wait until one of the n requests is done, the wait counted in wait_ms; returns its index. */
extern int	clerk_wait_first(ClerkRun *run, const int *reqs, int n);

/* After each page: the progress shown, and every few pages a message. */
extern void clerk_page_done(ClerkRun *run, ClerkEntity entity, int64 fetched_before);

/*
 * Write the answer to request `req` of a listing in its own transaction,
 * timed, and let the request go; *a says what the page held (its scanned
 * hook and hook_arg stay as the caller set them).
 */
extern void clerk_write_answer(ClerkRun *run, const ClerkListSpec *spec, const ClerkHttpResult *res,
							   const char *what, int req, bool track_seen, bool want_ids,
							   ClerkPageArgs *a);

/* A listing in progress: made, started, stepped whenever its head is in, finished. */
extern ClerkLister *clerk_lister_new(void);
extern void clerk_lister_start(ClerkRun *run, ClerkLister *l, const ClerkListSpec *spec);
/* The request the listing needs next. */
extern int	clerk_lister_head(const ClerkLister *l);
/* Write the head's answer and ask for what may be asked for now. */
extern void clerk_lister_step(ClerkRun *run, ClerkLister *l);
extern bool clerk_lister_done(const ClerkLister *l);
/* The listing is over: pages asked for beyond the end are let go. */
extern ClerkListOutcome clerk_lister_finish(ClerkRun *run, ClerkLister *l);

/* ---- users by cursor (users_by_cursor.c) ---- */

/* Ask for the oldest and the newest user, which the listing by cursor starts from. */
extern ClerkUserEdges *clerk_user_edges_submit(ClerkRun *run);

/*
 * The full listing of users by cursor, over created_at ranges walked at
 * once, and `side` (if not NULL) side by side with it; false, having listed
 * nothing, if the API does not page by cursor (then page by offset).
 */
extern bool clerk_list_users_by_cursor(ClerkRun *run, ClerkUserEdges *edges, ClerkLister *side);

/* ---- memberships (memberships.c) ---- */

/*
 * Start listing memberships instance-wide: newest first in an incremental
 * run, else from both ends, giving up for the per-organization listing when
 * that is clearly cheaper; org_requests is what that listing would ask (a
 * full run weighs it, an incremental one does not).
 */
extern ClerkLister *clerk_memberships_begin(ClerkRun *run, int64 org_requests);

/*
 * Walk the memberships listing to its end.  When it gave up, *why says why
 * (in the run's memory).
 */
extern ClerkListOutcome clerk_memberships_end(ClerkRun *run, ClerkLister *l, char **why);

#endif							/* CLERK_LISTING_H */
