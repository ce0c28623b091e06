/*
 * common.c
 *		Small helpers every part of clerk_sync uses: the preload check,
 *		running as the role that writes the clerk tables, and work in a
 *		subtransaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "clerk_sync.h"
#include "extension.h"

void
clerk_require_preload(const char *what)
{
	if (!clerk_sync_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("clerk_sync must be loaded via shared_preload_libraries"),
				 errdetail("%s needs shared memory and background workers, which only a preloaded library has.", what),
				 errhint("Add clerk_sync to shared_preload_libraries in postgresql.conf and restart the server.")));
}

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

/*
 * fn(arg) in a subtransaction that is committed (keep) or rolled back; the
 * error, if any, as clerk_try() returns it.
 */
static ErrorData *
in_subtransaction(void (*fn) (void *arg), void *arg, bool keep)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(mcxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
			edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

ErrorData *
clerk_try(void (*fn) (void *arg), void *arg)
{
	return in_subtransaction(fn, arg, true);
}

void
clerk_without_locks(void (*fn) (void *arg), void *arg)
{
	ErrorData  *edata = in_subtransaction(fn, arg, false);

	if (edata != NULL)
		ReThrowError(edata);
}
