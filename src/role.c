/*
 * role.c
 *		The roles clerk_sync's work runs as: the writer of the clerk tables, and a run's worker's login role.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "extension.h"
#include "role.h"

/*
 * The role a run's worker connects as: the current role, or the session's
 * when the current role may not log in (SET ROLE to a group role).
 */
Oid
clerk_worker_role(void)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetUserId()));
	bool		canlogin = false;

	if (HeapTupleIsValid(tup))
	{
		canlogin = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
		ReleaseSysCache(tup);
	}
	return canlogin ? GetUserId() : GetSessionUserId();
}

void
clerk_become_writer(ClerkSavedUser *saved, int needs)
{
	Oid			writer = clerk_extension_writer(needs);

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(writer, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
clerk_restore_user(ClerkSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	AtEOXact_GUC(true, saved->guc_nestlevel);
}

