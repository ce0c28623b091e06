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

#endif							/* CLERK_RUN_CONTROL_H */
