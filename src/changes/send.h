/*
 * send.h
 *		The write-back worker's work: send the committed changes of clerk.changes to Clerk and write the answers.
 */
#ifndef CLERK_SEND_H
#define CLERK_SEND_H

/*
 * Send changes until none is left and none has come for a while (or, with
 * probe, until none is left: a sender the launcher started at server
 * start only finishes what is pending).  Runs in a background worker
 * connected to the database, which holds its sender slot.
 */
extern void clerk_send_changes(bool probe);

#endif							/* CLERK_SEND_H */
