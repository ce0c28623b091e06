/*
 * ddl.h
 *		DDL that changes or drops the extension stops its runs first.
 */
#ifndef CLERK_DDL_H
#define CLERK_DDL_H

/* Install the ProcessUtility hook; from _PG_init of a preloaded library. */
extern void clerk_ddl_init(void);

#endif							/* CLERK_DDL_H */
