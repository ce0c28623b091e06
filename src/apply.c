/*
 * apply.c
 *		clerk_apply_page(): write one page of Clerk JSON through the same
 *		path a sync uses, for pages obtained some other way (an export, a
 *		file, a test).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "clerk_sync.h"
#include "store.h"

PG_FUNCTION_INFO_V1(clerk_apply_page);

/*
 * clerk_apply_page(entity text, page jsonb) returns jsonb
 *
 * entity is users, organizations or memberships; page is what the Clerk
 * API answers (a bare array, {data, total_count}) or one object.  Returns
 * the counts: fetched, inserted, updated, unchanged, failed.
 */
Datum
clerk_apply_page(PG_FUNCTION_ARGS)
{
	char	   *entity = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *page = PG_GETARG_JSONB_P(1);
	ClerkPageCounts counts = {0};
	ClerkSavedUser saved;
	ClerkEntity e;
	char	   *result;

	if (!clerk_entity_by_name(entity, &e))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown entity \"%s\"", entity),
				 errhint("Use users, organizations or memberships.")));

	clerk_become_owner(&saved, CLERK_SQL_FOR_SYNC);
	clerk_store_page(e, page, false, false, 0, &counts);
	clerk_restore_user(&saved);

	result = psprintf("{\"fetched\": " INT64_FORMAT ", \"inserted\": " INT64_FORMAT
					  ", \"updated\": " INT64_FORMAT ", \"unchanged\": " INT64_FORMAT
					  ", \"failed\": " INT64_FORMAT "}",
					  counts.fetched, counts.inserted, counts.updated, counts.unchanged,
					  counts.failed);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result)));
}
