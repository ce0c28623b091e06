/*
 * bulk_insert.h
 *		A page's new rows into their table the way COPY stores them.
 */
#ifndef CLERK_BULK_INSERT_H
#define CLERK_BULK_INSERT_H

#include "access/htup.h"
#include "access/tupdesc.h"

#include "base/entity.h"

/* The entity's table (InvalidOid when it is missing). */
extern Oid	clerk_table_oid(const ClerkEntityInfo *ei);

/*
 * Whether new rows may go into the table without INSERT's executor: a plain
 * table the current role may insert into, with no insert trigger or rule,
 * no row-level security and no generated column.
 */
extern bool clerk_bulk_insert_possible(Oid relid);

/*
 * Insert n rows (tuples of rowdesc, whose first columns are the table's but
 * the dropped ones, in order) with table_multi_insert(), checking the
 * table's constraints and adding the index entries; returns how many.  A
 * unique violation is an ERROR, as INSERT's.
 */
extern int64 clerk_bulk_insert(Oid relid, HeapTuple *rows, int n, TupleDesc rowdesc);

#endif							/* CLERK_BULK_INSERT_H */
