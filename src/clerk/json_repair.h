/*
 * json_repair.h
 *		Make any RFC 8259 JSON text storable as jsonb, and find its parts.
 */
#ifndef CLERK_JSON_REPAIR_H
#define CLERK_JSON_REPAIR_H

#include "nodes/pg_list.h"

/*
 * The one repair, applied the same way on every path: what jsonb cannot
 * hold becomes what it can.
 */
typedef enum ClerkRepairRule
{
	CLERK_REPAIR_NUL = 0,		/* \u0000 -> U+FFFD */
	CLERK_REPAIR_SURROGATE,		/* an unpaired \ud800-\udfff escape -> U+FFFD */
	CLERK_REPAIR_UTF8,			/* each byte of an invalid UTF-8 sequence -> U+FFFD */
	CLERK_REPAIR_NUMBER,		/* a number numeric cannot hold -> the same digits as a string */
	CLERK_REPAIR_NRULES
} ClerkRepairRule;

/* "nul_character", "unpaired_surrogate", "invalid_utf8", "number_out_of_range" */
extern const char *clerk_repair_rule_name(ClerkRepairRule rule);

/* One repair: where (the list element, or -1) and what. */
typedef struct ClerkRepair
{
	int			element;		/* index in the list, or -1 outside it (or no list) */
	char	   *path;			/* e.g. unsafe_metadata.note, email_addresses[0].email_address */
	ClerkRepairRule rule;
} ClerkRepair;

/* A part of the repaired text: [start, start + len); len 0 when absent. */
typedef struct ClerkJsonSpan
{
	int			start;
	int			len;
} ClerkJsonSpan;

typedef struct ClerkJsonText
{
	const char *text;			/* the repaired text (the input when nothing changed) */
	int			len;
	List	   *repairs;		/* of ClerkRepair * */

	/*
	 * The list, as clerk.objects() finds it: the root array, or the array in
	 * the root object's "data" member.  Without one, the root is the only
	 * object.
	 */
	bool		is_list;
	int			nelems;
	ClerkJsonSpan *elems;		/* each element of the list */
	ClerkJsonSpan *elem_ids;	/* each element's "id" string, quotes included */
	/* members of the root object (number, string, value and string tokens) */
	ClerkJsonSpan total_count;
	ClerkJsonSpan type;
	ClerkJsonSpan data;
	ClerkJsonSpan data_id;		/* "id" of the root's "data" object */
	ClerkJsonSpan root_id;		/* "id" of the root object */
} ClerkJsonText;

/*
 * Check that in[0..len) is one JSON value (RFC 8259) and repair what jsonb
 * cannot hold; fills *out (palloc'd) and returns NULL, or returns why the
 * text is not JSON (nothing is repaired then).
 */
extern char *clerk_json_repair(const char *in, size_t len, ClerkJsonText *out);

#endif							/* CLERK_JSON_REPAIR_H */
