/*
 * common.c
 *		Small helpers every part of clerk_sync uses: the secret key, the
 *		preload check, running as the extension's owner, and trying work
 *		in a subtransaction.
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
#include "vault.h"

char *
clerk_resolve_secret_key(void)
{
	char	   *stored = clerk_vault_stored_secret_key();
	const char *env;

	if (stored != NULL && stored[0] != '\0')
		return stored;
	if (clerk_sync_secret_key != NULL && clerk_sync_secret_key[0] != '\0')
		return pstrdup(clerk_sync_secret_key);
	env = getenv("CLERK_SECRET_KEY");
	if (env != NULL && env[0] != '\0')
		return pstrdup(env);
	return NULL;
}

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
clerk_become_owner(ClerkSavedUser *saved, int needs)
{
	Oid			owner = clerk_extension_owner(needs);

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
clerk_restore_user(ClerkSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	AtEOXact_GUC(true, saved->guc_nestlevel);
}

ErrorData *
clerk_try(void (*fn) (void *arg), void *arg)
{
	MemoryContext mcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(mcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
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
