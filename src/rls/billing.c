/*
 * billing.c
 *		Row-level security from the synced Clerk Billing data: a payer's active plan and its features.
 *
 * A token can be minutes old; a policy that wants the database's view asks
 * clerk.active_plan(payer) or clerk.payer_has_feature(payer, feature).  A
 * payer is a user id or an organization id.  Each call site keeps what it
 * read of each payer for as long as its snapshot stays, so a policy that
 * asks about the same organization on every row reads it once, with one
 * index scan on billing_subscription_items_payer_idx.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "rls/reader_query.h"
#include "rls/snapshot_key.h"

PG_FUNCTION_INFO_V1(clerk_rls_active_plan);
PG_FUNCTION_INFO_V1(clerk_rls_payer_has_feature);

/* payer ids longer than this are read on every call, not kept */
#define PAYER_KEY_LEN 256

/*
 * The live items of a payer, the one that stands for its plan first: active
 * before past due and canceled (until its period ends), paid before free,
 * the newest period first; each with its plan's slug and features.
 */
#define PAYER_SQL \
	"SELECT coalesce(i.plan_slug, p.slug), p.features " \
	"FROM clerk.billing_subscription_items i " \
	"LEFT JOIN clerk.billing_plans p ON p.id = i.plan_id AND p.deleted_at IS NULL " \
	"WHERE coalesce(i.organization_id, i.user_id) = $1 AND i.deleted_at IS NULL " \
	"  AND (i.status IN ('active', 'past_due') " \
	"       OR (i.status = 'canceled' AND (i.period_end IS NULL OR i.period_end > now()))) " \
	"ORDER BY i.status = 'active' DESC, coalesce(i.amount, p.fee, 0) > 0 DESC, " \
	"  i.period_start DESC NULLS LAST, i.id COLLATE \"C\""

/* What the data says of one payer. */
typedef struct PayerPlan
{
	char		key[PAYER_KEY_LEN];
	char	   *plan;			/* the slug, or NULL: no live item */
	int			nfeatures;
	char	  **features;		/* of every live item's plan */
} PayerPlan;

/* A call site's payers (in its fn_extra), read under one snapshot. */
typedef struct PayerCache
{
	MemoryContext cxt;			/* the payers; reset when the snapshot changes */
	ClerkSnapshotKey snapshot;
	HTAB	   *payers;
} PayerCache;

/* Keep the rows of PAYER_SQL in a PayerPlan (its memory: the current context's at the call). */
typedef struct KeepPayer
{
	MemoryContext cxt;
	PayerPlan  *out;
} KeepPayer;

static void
keep_payer(void *arg)
{
	KeepPayer  *k = (KeepPayer *) arg;
	PayerPlan  *out = k->out;
	MemoryContext old = MemoryContextSwitchTo(k->cxt);

	out->plan = NULL;
	out->nfeatures = 0;
	out->features = NULL;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		features = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		if (i == 0)
			out->plan = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(features), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &n);
			out->features = out->features == NULL ? palloc(Max(n, 1) * sizeof(char *)) :
				repalloc(out->features, (out->nfeatures + Max(n, 1)) * sizeof(char *));
			for (int j = 0; j < n; j++)
				if (!nulls[j])
					out->features[out->nfeatures++] = TextDatumGetCString(elems[j]);
		}
	}
	MemoryContextSwitchTo(old);
}

/* Read payer's live items into *out (its memory: cxt), as the reader, with one index scan. */
static void
load_payer(MemoryContext cxt, const char *payer, PayerPlan *out)
{
	static SPIPlanPtr plan = NULL;
	KeepPayer	k = {cxt, out};

	clerk_reader_query(&plan, PAYER_SQL, payer, keep_payer, &k);
}

/* What the data says of payer, read once per call site and snapshot. */
static const PayerPlan *
payer_plan(FunctionCallInfo fcinfo, const char *payer)
{
	PayerCache *c = (PayerCache *) fcinfo->flinfo->fn_extra;
	PayerPlan  *entry;
	bool		found;

	if (strlen(payer) >= PAYER_KEY_LEN)
	{
		entry = palloc0(sizeof(PayerPlan));
		load_payer(CurrentMemoryContext, payer, entry);
		return entry;
	}
	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PayerCache));
		c->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "clerk_sync payers",
									   ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = c;
	}
	if (c->payers == NULL || !clerk_snapshot_same(&c->snapshot))
	{
		HASHCTL		ctl;
		MemoryContext old;

		MemoryContextReset(c->cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = PAYER_KEY_LEN;
		ctl.entrysize = sizeof(PayerPlan);
		ctl.hcxt = c->cxt;
		c->payers = hash_create("clerk_sync payers", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		old = MemoryContextSwitchTo(c->cxt);
		clerk_snapshot_remember(&c->snapshot);
		MemoryContextSwitchTo(old);
	}
	entry = (PayerPlan *) hash_search(c->payers, payer, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;
	{
		PayerPlan	loaded;

		memset(&loaded, 0, sizeof(loaded));
		load_payer(c->cxt, payer, &loaded);
		entry = (PayerPlan *) hash_search(c->payers, payer, HASH_ENTER, &found);
		entry->plan = loaded.plan;
		entry->nfeatures = loaded.nfeatures;
		entry->features = loaded.features;
	}
	return entry;
}

/* clerk.active_plan(payer_id text) returns text: the slug of the payer's live item's plan */
Datum
clerk_rls_active_plan(PG_FUNCTION_ARGS)
{
	const PayerPlan *p = payer_plan(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (p->plan == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(p->plan));
}

/* clerk.payer_has_feature(payer_id text, feature text) returns boolean */
Datum
clerk_rls_payer_has_feature(PG_FUNCTION_ARGS)
{
	const PayerPlan *p = payer_plan(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	char	   *feature = text_to_cstring(PG_GETARG_TEXT_PP(1));

	for (int i = 0; i < p->nfeatures; i++)
		if (strcmp(p->features[i], feature) == 0)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}
