/*
 * memberships.c
 *		How memberships are listed: instance-wide from both ends, or per organization when a model of the latency says that is cheaper.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/memutils.h"

#include "clerk/clerk_api.h"
#include "clerk/json_members.h"
#include "store/transaction.h"
#include "sync/listing.h"

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
	ClerkLister *l = clerk_lister_new();

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
	clerk_lister_start(run, l, spec);
	return l;
}

ClerkListOutcome
clerk_memberships_end(ClerkRun *run, ClerkLister *l, char **why)
{
	ClerkListOutcome outcome;

	while (!clerk_lister_done(l))
		clerk_lister_step(run, l);
	outcome = clerk_lister_finish(run, l);
	pfree(l);
	if (membership_model.probe_req >= 0)
		clerk_http_release(run->http, membership_model.probe_req);
	if (outcome == CLERK_LIST_GAVE_UP)
		*why = membership_model.why;
	return outcome;
}
