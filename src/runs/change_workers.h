/*
 * change_workers.h
 *		The write-back's background workers: the launcher (one per server) and a sender per database.
 */
#ifndef CLERK_CHANGE_WORKERS_H
#define CLERK_CHANGE_WORKERS_H

/* At server start (shared_preload_libraries): register the launcher. */
extern void clerk_change_workers_init(void);

#endif							/* CLERK_CHANGE_WORKERS_H */
