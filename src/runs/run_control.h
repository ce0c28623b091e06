/*
 * run_control.h
 *		Sync runs from the caller's side: start or join, wait, watch, cancel.
 */
#ifndef CLERK_RUN_CONTROL_H
#define CLERK_RUN_CONTROL_H

#include "postgres.h"

/*
 * Stop every run in database dboid and wait (bounded) until they have
 * recorded their end: DDL on the extension calls this before it takes its
 * locks.  Returns the number of runs stopped.
 */
extern int	clerk_stop_runs_for_ddl(Oid dboid);

/*
 * The Clerk secret key for work against the API (a run, a sessions
 * backfill), read without keeping the locks that reading it takes, after
 * checking that the installed SQL serves a sync; an error if there is
 * none, or it is too long.  The caller wipes it.
 */
extern char *clerk_run_key(void);

#endif							/* CLERK_RUN_CONTROL_H */
