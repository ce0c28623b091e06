/*
 * reader_query.h
 *		The row-level security helpers' one kind of query: a saved plan of one text argument, run as the reader.
 */
#ifndef CLERK_READER_QUERY_H
#define CLERK_READER_QUERY_H

#include "executor/spi.h"

/*
 * Run sql ($1 text = arg) as the role that may read the clerk tables (the
 * caller has no right on them), under the caller's snapshot; read(read_arg)
 * sees SPI_tuptable and SPI_processed before SPI_finish, and copies what it
 * keeps out of SPI's memory.  *plan is prepared on first use and kept.
 */
extern void clerk_reader_query(SPIPlanPtr *plan, const char *sql, const char *arg,
							   void (*read) (void *read_arg), void *read_arg);

#endif							/* CLERK_READER_QUERY_H */
