/*
 * role.h
 *		The roles clerk_sync's work runs as: the writer of the clerk tables, and a run's worker's login role.
 */
#ifndef CLERK_ROLE_H
#define CLERK_ROLE_H

/*
 * Run the rest of the caller's work as the role that writes the clerk
 * tables (clerk_sync_writer: never a superuser), and
 * with search_path pinned to pg_catalog so that no object of the caller's
 * can stand in for a built-in one.  Restore in the same transaction.
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
extern void clerk_restore_user(ClerkSavedUser *saved);

#endif							/* CLERK_ROLE_H */
