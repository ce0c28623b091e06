/*
 * transaction.h
 *		Work in a transaction or a subtransaction of its own.
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

/*
 * Run fn(arg) in a subtransaction.  Returns NULL when it succeeded, else
 * its error (copied into the caller's memory context), with the
 * subtransaction rolled back.  Cancel, shutdown and out-of-memory are not
 * caught: they end the caller's work too.
 */
extern ErrorData *clerk_try(void (*fn) (void *arg), void *arg);

/*
 * Run fn(arg) in a subtransaction that is rolled back even when it
 * succeeds: the locks it took go with it (what it allocated in the
 * caller's memory context stays).  Its errors are raised.
 */
extern void clerk_without_locks(void (*fn) (void *arg), void *arg);

#endif							/* CLERK_TRANSACTION_H */
