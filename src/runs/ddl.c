/*
 * ddl.c
 *		DDL that changes or drops the extension stops its runs first.
 *
 * DROP EXTENSION, ALTER EXTENSION, DROP SCHEMA clerk and DROP DATABASE
 * take locks that a running worker's next page waits for, while the
 * worker holds locks the DDL waits for.  So before such a statement takes
 * any lock, the runs of the database are canceled and given a few seconds
 * to record their end; the statement then proceeds as it would have.
 * Only when the statement is going to happen, though: the caller must own
 * what it drops or alters (or be a superuser), as PostgreSQL checks next;
 * a statement that will fail for lack of rights stops nothing.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"

#include "base/compat.h"
#include "runs/ddl.h"
#include "runs/run_control.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

static bool
names(List *objects, const char *name)
{
	ListCell   *lc;

	foreach(lc, objects)
	{
		Node	   *n = (Node *) lfirst(lc);

		if (IsA(n, String) && strcmp(strVal(n), name) == 0)
			return true;
	}
	return false;
}

/* Whether the current role owns the object (a superuser owns everything). */
static bool
owns(Oid classid, Oid objid)
{
	return OidIsValid(objid) && clerk_ownercheck(classid, objid, GetUserId());
}

/* The database of this session, if the current role owns the extension. */
static Oid
if_owner_of_extension(void)
{
	return owns(ExtensionRelationId, get_extension_oid("clerk_sync", true)) ?
		MyDatabaseId : InvalidOid;
}

/*
 * The database whose runs the statement must stop first, or InvalidOid:
 * none unless the caller may do what the statement does.
 */
static Oid
database_to_stop(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;

				if (d->removeType == OBJECT_EXTENSION && names(d->objects, "clerk_sync"))
					return if_owner_of_extension();
				if (d->removeType == OBJECT_SCHEMA && names(d->objects, "clerk"))
					return owns(NamespaceRelationId, get_namespace_oid("clerk", true)) ?
						MyDatabaseId : InvalidOid;
				return InvalidOid;
			}
		case T_AlterExtensionStmt:
			return strcmp(((AlterExtensionStmt *) stmt)->extname, "clerk_sync") == 0 ?
				if_owner_of_extension() : InvalidOid;
		case T_AlterExtensionContentsStmt:
			return strcmp(((AlterExtensionContentsStmt *) stmt)->extname, "clerk_sync") == 0 ?
				if_owner_of_extension() : InvalidOid;
		case T_DropdbStmt:
			{
				Oid			dboid = get_database_oid(((DropdbStmt *) stmt)->dbname, true);

				return owns(DatabaseRelationId, dboid) ? dboid : InvalidOid;
			}
		default:
			return InvalidOid;
	}
}

static void
clerk_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dboid = database_to_stop(pstmt->utilityStmt);

	if (OidIsValid(dboid) && clerk_stop_runs_for_ddl(dboid) > 0)
		ereport(NOTICE,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("running clerk_sync runs were canceled first")));

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
clerk_ddl_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = clerk_process_utility;
}
