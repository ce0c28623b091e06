/*
 * sync.h
 *		One sync run: which listings, in what order, and the deletion sweep.
 */
#ifndef CLERK_SYNC_RUN_H
#define CLERK_SYNC_RUN_H

#include "sync/run.h"

/* Do the run's work; throws on failure (the worker records the outcome). */
extern void clerk_sync_execute(ClerkRun *run);

#endif							/* CLERK_SYNC_RUN_H */
