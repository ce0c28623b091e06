/*
 * compat.h
 *		What differs between the PostgreSQL versions clerk_sync builds against (15 to 18), in one place.
 */
#ifndef CLERK_COMPAT_H
#define CLERK_COMPAT_H

#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"

/* 16 split the varlena macros (VARDATA, SET_VARSIZE, ...) out of postgres.h */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/* 17 moved the backend's local transaction id into PGPROC.vxid */
#if PG_VERSION_NUM >= 170000
#define CLERK_MY_LXID (MyProc->vxid.lxid)
#else
#define CLERK_MY_LXID (MyProc->lxid)
#endif

/* 17 numbers the PGPROCs by MyProcNumber; before, PGPROC.pgprocno said it */
#if PG_VERSION_NUM >= 170000
#define CLERK_MY_PROCNO ((int) MyProcNumber)
#else
#define CLERK_MY_PROCNO (MyProc->pgprocno)
#endif
/* the latch of the process with that number (an index, never a pointer, is what is shared) */
#define CLERK_PROC_LATCH(procno) (&ProcGlobal->allProcs[(procno)].procLatch)

/*
 * Whether role owns the object of catalog classid (16 made one function of
 * the per-catalog ones; clerk_sync asks about databases, extensions and
 * schemas).
 */
#if PG_VERSION_NUM >= 160000
#define clerk_ownercheck(classid, objid, role) object_ownercheck((classid), (objid), (role))
#else
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"

static inline bool
clerk_ownercheck(Oid classid, Oid objid, Oid role)
{
	if (classid == DatabaseRelationId)
		return pg_database_ownercheck(objid, role);
	if (classid == ExtensionRelationId)
		return pg_extension_ownercheck(objid, role);
	return pg_namespace_ownercheck(objid, role);
}
#endif

/* 16 told ExecInsertIndexTuples() whether only summarizing indexes need the new entry */
#if PG_VERSION_NUM >= 160000
#define CLERK_INSERT_INDEX_TUPLES(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#else
#define CLERK_INSERT_INDEX_TUPLES(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#endif

/* 18 added virtual generated columns beside the stored ones */
#if PG_VERSION_NUM >= 180000
#define CLERK_HAS_GENERATED(constr) ((constr)->has_generated_stored || (constr)->has_generated_virtual)
#else
#define CLERK_HAS_GENERATED(constr) ((constr)->has_generated_stored)
#endif

#endif							/* CLERK_COMPAT_H */
