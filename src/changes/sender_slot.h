/*
 * sender_slot.h
 *		Shared memory of the write-back: which database has a sender running, and waking it when a change commits.
 *
 * One sender per database at most: a database's slot is NONE (no sender),
 * STARTING (registered, not yet running) or RUNNING (with its process
 * number, whose latch a commit sets).  Every field is read and written
 * here, under one spinlock.
 */
#ifndef CLERK_SENDER_SLOT_H
#define CLERK_SENDER_SLOT_H

#include "datatype/timestamp.h"
#include "postmaster/bgworker.h"

/* At server start (shared_preload_libraries): ask for the shared memory. */
extern void clerk_sender_slots_init(void);

/*
 * After a commit that queued changes in database dboid: set the running
 * sender's latch, or start one.  Never throws (it runs after the commit):
 * when no worker can be started now, the launcher is asked to try again.
 */
extern void clerk_sender_wake(Oid dboid);

/*
 * A sender of MyDatabaseId takes its database's slot: false if another
 * sender runs there already (this one then exits).  release gives it up
 * when the sender is about to exit idle; afterwards a commit starts a new
 * sender, so a sender that finds work after release must claim again.
 * release also frees a slot left STARTING by a sender that exits without
 * having claimed it.
 */
extern bool clerk_sender_claim(void);
extern void clerk_sender_release(void);

/* The launcher: its latch is set when a sender could not be started. */
extern void clerk_sender_set_launcher(void);
/* Databases whose wanted sender is due, now STARTING; returns how many (at most max). */
extern int	clerk_sender_take_wanted(Oid *dboids, int max);

/*
 * Start a sender for dboid now (false when no worker slot is free; then
 * start_failed: the launcher tries again).  A probe only finishes what is
 * pending; with handle, the caller (the launcher) can watch it.
 */
extern bool clerk_sender_start(Oid dboid, bool probe, BackgroundWorkerHandle **handle);
extern void clerk_sender_start_failed(Oid dboid);

/*
 * A sender is wanted in dboid at `at` (unless one is starting or running):
 * the launcher starts it then.  A sender that exits with work due later,
 * or a launcher that could not start one, says so.
 */
extern void clerk_sender_want(Oid dboid, TimestampTz at);

#endif							/* CLERK_SENDER_SLOT_H */
