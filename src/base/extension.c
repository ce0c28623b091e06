/*
 * extension.c
 *		The extension's catalog row: its owner, and whether this library
 *		serves the SQL version a database has installed.
 *
 * A server gets a new library when it restarts after a package upgrade,
 * while each database keeps its SQL objects until ALTER EXTENSION
 * clerk_sync UPDATE.  Every entry point that touches the schema comes
 * through here first, so a library never works on SQL objects it does not
 * know: a database that is behind is told to update, one that is ahead (an
 * older library after a downgrade, or a server not restarted after an
 * upgrade) is told to install the matching library.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "base/extension.h"

PG_FUNCTION_INFO_V1(clerk_library_version);

/* "1.0" as 100; -1 for anything that is not major.minor */
static int
parse_version(const char *v)
{
	int			major,
				minor;
	char		tail;

	if (sscanf(v, "%d.%d%c", &major, &minor, &tail) != 2 ||
		major < 0 || minor < 0 || minor > 99)
		return -1;
	return major * 100 + minor;
}

static void
check_version(const char *installed, int needs)
{
	int			v = parse_version(installed);

	if (v < 0 || v > CLERK_SQL_NEWEST)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension clerk_sync is at version %s, newer than its library (%s)",
						installed, CLERK_LIBRARY_VERSION),
				 errdetail("The server runs a clerk_sync library that does not know the SQL objects of this database."),
				 errhint("Install the clerk_sync library of version %s and restart the server.",
						 installed)));
	if (v < needs)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension clerk_sync is at version %s, older than its library (%s) needs",
						installed, CLERK_LIBRARY_VERSION),
				 errdetail("The server runs a newer clerk_sync library than the SQL objects of this database were installed for."),
				 errhint("Run ALTER EXTENSION clerk_sync UPDATE.")));
}

/* The extension's owner, after the version check; *version gets the installed one. */
static Oid
extension_row(int needs, int *version)
{
	Oid			extoid = get_extension_oid("clerk_sync", false);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner;
	Datum		values[Natts_pg_extension];
	bool		nulls[Natts_pg_extension];
	char	   *installed;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "could not find extension clerk_sync");
	owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	heap_deform_tuple(tup, RelationGetDescr(rel), values, nulls);
	installed = nulls[Anum_pg_extension_extversion - 1] ? pstrdup("") :
		TextDatumGetCString(values[Anum_pg_extension_extversion - 1]);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	/* the install or update script itself may call in between versions */
	if (!(creating_extension && CurrentExtensionObject == extoid))
		check_version(installed, needs);
	*version = parse_version(installed);
	pfree(installed);
	return owner;
}

void
clerk_require_sql_version(int needs)
{
	int			version;

	(void) extension_row(needs, &version);
}

Oid
clerk_extension_writer(int needs)
{
	int			version;
	Oid			writer;

	/* every part needs 1.1's SQL at least, where the writer role came in */
	StaticAssertStmt(CLERK_SQL_FOR_SYNC >= CLERK_SQL_1_1 && CLERK_SQL_FOR_VAULT >= CLERK_SQL_1_1 &&
					 CLERK_SQL_FOR_WEBHOOKS >= CLERK_SQL_1_1 && CLERK_SQL_FOR_RLS >= CLERK_SQL_1_1,
					 "a part of the library would write as the extension's owner on 1.0's SQL");
	(void) extension_row(needs, &version);
	writer = get_role_oid(CLERK_WRITER_ROLE, true);
	if (!OidIsValid(writer))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", CLERK_WRITER_ROLE),
				 errdetail("clerk_sync writes to the clerk tables as %s, which its install script creates.", CLERK_WRITER_ROLE),
				 errhint("Create it with CREATE ROLE %s NOLOGIN and grant it what the install script grants, or reinstall the extension.",
						 CLERK_WRITER_ROLE)));
	return writer;
}

/*
 * clerk_library_version() returns text: the version of the library the
 * server runs, which clerk_status() shows next to the installed SQL's.
 */
Datum
clerk_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(CLERK_LIBRARY_VERSION));
}
