/*
 * extension.h
 *		The extension's catalog row: its owner, and whether this library
 *		serves the SQL version a database has installed.
 */
#ifndef CLERK_EXTENSION_H
#define CLERK_EXTENSION_H

#include "postgres.h"

#include "base/base.h"

/*
 * SQL versions as numbers that compare: major * 100 + minor.
 */
#define CLERK_SQL_1_0 100
#define CLERK_SQL_1_1 101
#define CLERK_SQL_NEWEST CLERK_SQL_1_1

/*
 * The oldest SQL version each part of the library works with.  A part
 * whose SQL objects change in a release raises its entry here, so that a
 * database not yet updated gets a clear error instead of a wrong result.
 */
#define CLERK_SQL_FOR_SYNC		CLERK_SQL_1_1	/* runs, the write path, clerk_apply_page */
#define CLERK_SQL_FOR_VAULT		CLERK_SQL_1_1	/* credentials and stored secrets, as the writer */
#define CLERK_SQL_FOR_WEBHOOKS	CLERK_SQL_1_1	/* clerk_handle_webhook */
#define CLERK_SQL_FOR_RLS		CLERK_SQL_1_1	/* clerk.is_member(), clerk.org_role_in() */
#define CLERK_SQL_FOR_CHANGES	CLERK_SQL_1_1	/* clerk.changes and the write-back */

/* The role the clerk tables are written as (a NOLOGIN role without rights elsewhere). */
#define CLERK_WRITER_ROLE "clerk_sync_writer"

/*
 * The role that works on the clerk tables, after checking that the
 * installed SQL is at least needs (one of CLERK_SQL_FOR_*) and not newer
 * than this library (otherwise an error that names the ALTER EXTENSION or
 * library update that is needed): clerk_sync_writer.  (1.0 had no writer
 * role and wrote as the extension's owner: this library never does.)
 */
extern Oid	clerk_extension_writer(int needs);

/* Error unless the installed SQL serves needs (as above). */
extern void clerk_require_sql_version(int needs);

#endif							/* CLERK_EXTENSION_H */
