/*
 * subtransaction.h
 *		Work in a subtransaction of its own (cancel, shutdown and out-of-memory are never swallowed).
 */
#ifndef CLERK_SUBTRANSACTION_H
#define CLERK_SUBTRANSACTION_H

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

#endif							/* CLERK_SUBTRANSACTION_H */
