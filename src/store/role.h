/*
 * role.h
 *		The roles clerk_sync's work runs as: the writer of the clerk tables, and a run's worker's login role.
 */
#ifndef CLERK_ROLE_H
#define CLERK_ROLE_H

/*
 * Run the rest of the caller's work as the role that writes the clerk
 * tables (clerk_sync_writer: never a superuser), with search_path pinned
 * to pg_catalog so that no object of the caller's can stand in for a
 * built-in one, and (for a writer) with session_replication_role =
 * replica, so that no trigger fires unless the table's owner enabled it
 * with ENABLE REPLICA or ENABLE ALWAYS.  Restore in the same transaction,
 * or, after committing it, with clerk_restore_user_after_commit().
 * needs is the oldest SQL version the caller works with (CLERK_SQL_FOR_*
 * in extension.h); an older or unknown one is an error.
 */
typedef struct ClerkSavedUser
{
	Oid			userid;
	int			sec_context;
	int			guc_nestlevel;	/* search_path is pinned until restore */
} ClerkSavedUser;

/* The role a run's worker connects as (the caller's, if it may log in). */
extern Oid	clerk_worker_role(void);

extern void clerk_become_writer(ClerkSavedUser *saved, int needs);
/* The same, to read only: the replication role is left as it is. */
extern void clerk_become_reader(ClerkSavedUser *saved, int needs);
extern void clerk_restore_user(ClerkSavedUser *saved);
extern void clerk_restore_user_after_commit(ClerkSavedUser *saved);

/* A run's worker writes as a replica for its whole session (see role.c). */
extern void clerk_writer_session(void);

#endif							/* CLERK_ROLE_H */
