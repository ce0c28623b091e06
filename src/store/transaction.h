/*
 * transaction.h
 *		A page of the write path in a transaction of its own, as the writer.
 */
#ifndef CLERK_TRANSACTION_H
#define CLERK_TRANSACTION_H

/*
 * Run fn(arg) in its own transaction, with a snapshot, as the writer of the
 * clerk tables (after checking the installed SQL); commits as the writer
 * (so that deferred triggers fire with its rights), and returns
 * in the memory context the caller was in (which must outlive the
 * transaction).  An error propagates: the transaction is rolled back by
 * the caller's error handling.
 */
extern void clerk_in_transaction(void (*fn) (void *arg), void *arg);

#endif							/* CLERK_TRANSACTION_H */
