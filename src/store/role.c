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

#include "base/extension.h"
#include "store/role.h"

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

/* session_replication_role = replica, until the nesting level ends (SAVE) or for the session (SET) */
static void
as_replica(GucAction action)
{
	(void) set_config_option("session_replication_role", "replica",
							 PGC_SUSET, PGC_S_SESSION, action, true, 0, false);
}

static void
become(ClerkSavedUser *saved, int needs, bool writes)
{
	Oid			writer = clerk_extension_writer(needs);

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	/*
	 * Triggers: as in a logical replication apply worker, only those that
	 * the table's owner enabled with ENABLE REPLICA or ENABLE ALWAYS fire.
	 * A role that may CREATE TRIGGER on a clerk table (the TRIGGER right)
	 * cannot enable its trigger that way (ALTER TABLE needs ownership), so
	 * no code of such a role runs as the writer or changes what it writes.
	 * The setting takes effect only when it changes, and a change replans
	 * every cached plan: a run's worker sets it once for its whole session.
	 */
	if (writes)
		as_replica(GUC_ACTION_SAVE);
	SetUserIdAndSecContext(writer, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
clerk_become_writer(ClerkSavedUser *saved, int needs)
{
	become(saved, needs, true);
}

void
clerk_become_reader(ClerkSavedUser *saved, int needs)
{
	become(saved, needs, false);
}

void
clerk_restore_user(ClerkSavedUser *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
	AtEOXact_GUC(true, saved->guc_nestlevel);
}

void
clerk_restore_user_after_commit(ClerkSavedUser *saved)
{
	/* the commit has popped the GUC nesting level already */
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

void
clerk_writer_session(void)
{
	as_replica(GUC_ACTION_SET);
}

