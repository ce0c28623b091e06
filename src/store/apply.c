/*
 * apply.c
 *		clerk_apply_page(): write one page of Clerk JSON through the same
 *		path a sync uses, for pages obtained some other way (an export, a
 *		file, a test).
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "base/compat.h"
#include "base/extension.h"
#include "clerk/parse.h"
#include "store/role.h"
#include "store/store.h"

PG_FUNCTION_INFO_V1(clerk_apply_page);
PG_FUNCTION_INFO_V1(clerk_apply_page_text);

/*
 * Write a parsed page of `entity`; the counts as jsonb.  The page counts as
 * fetched when the calling transaction started.
 */
static Datum
apply_parsed(const char *entity, ClerkParsed *page)
{
	ClerkPageCounts counts = {0};
	ClerkSavedUser saved;
	ClerkEntity e;
	char	   *result;

	if (!clerk_entity_by_name(entity, &e))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown entity \"%s\"", entity),
				 errhint("Use users, organizations, memberships, organization_invitations, invitations, organization_domains, roles, permissions, sessions, billing_plans, billing_prices, billing_subscription_items, billing_statements, billing_payment_attempts or waitlist_entries.")));

	clerk_become_writer(&saved, CLERK_SQL_FOR_SYNC);
	clerk_store_page(e, page, false, false, 0, GetCurrentTransactionStartTimestamp(), &counts, NULL);
	clerk_restore_user(&saved);

	result = psprintf("{\"fetched\": " INT64_FORMAT ", \"inserted\": " INT64_FORMAT
					  ", \"updated\": " INT64_FORMAT ", \"unchanged\": " INT64_FORMAT
					  ", \"failed\": " INT64_FORMAT ", \"repaired\": " INT64_FORMAT "}",
					  counts.fetched, counts.inserted, counts.updated, counts.unchanged,
					  counts.failed, counts.repaired);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(result));
}

/*
 * clerk_apply_page(entity text, page jsonb) returns jsonb
 *
 * entity is users, organizations or memberships; page is what the Clerk
 * API answers (a bare array, {data, total_count}) or one object.  Returns
 * the counts: fetched, inserted, updated, unchanged, failed, repaired.
 */
Datum
clerk_apply_page(PG_FUNCTION_ARGS)
{
	char	   *entity = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ClerkParsed page;

	clerk_parse_jsonb(PG_GETARG_JSONB_P(1), &page);
	PG_RETURN_DATUM(apply_parsed(entity, &page));
}

/*
 * clerk_apply_page(entity text, page text | json) returns jsonb
 *
 * The same, for a page as text: content jsonb cannot hold (\u0000, an
 * unpaired surrogate, a number beyond numeric) is repaired as a sync
 * repairs it, where a jsonb argument would fail in the caller's cast.
 */
Datum
clerk_apply_page_text(PG_FUNCTION_ARGS)
{
	char	   *entity = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *arg = PG_GETARG_TEXT_PP(1);
	ClerkParsed page;
	char	   *err = clerk_parse(text_to_cstring(arg), VARSIZE_ANY_EXHDR(arg), &page);

	if (err != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("the page is not JSON"),
				 errdetail("The text is not JSON: %s.", err)));
	PG_RETURN_DATUM(apply_parsed(entity, &page));
}
