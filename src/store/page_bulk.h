/*
 * page_bulk.h
 *		A page written as COPY writes: unchanged objects left out before mapping, new rows bulk-inserted.
 */
#ifndef CLERK_PAGE_BULK_H
#define CLERK_PAGE_BULK_H

#include "store/page_plan.h"

/*
 * Write a page (a ClerkPageWrite * with entity, relid and track_seen set)
 * the bulk way; SPI connected, for clerk_try_page_write().  Only for an
 * entity whose objects map one to a row of the same id, into a table
 * clerk_bulk_insert_possible() allows.
 */
extern void clerk_page_bulk_write(void *write);

#endif							/* CLERK_PAGE_BULK_H */
