/*
 * parse.h
 *		A Clerk answer (or webhook body) as objects: checked, repaired and
 *		converted to jsonb one by one.
 */
#ifndef CLERK_PARSE_H
#define CLERK_PARSE_H

#include "utils/jsonb.h"

#include "clerk/json_repair.h"

/* An element of the answer that could not become an object. */
typedef struct ClerkReject
{
	char	   *id;				/* its "id", when it has one */
	char	   *reason;
	int			sqlerrcode;
} ClerkReject;

/* An object that was repaired: its id and what was done (a JSON object). */
typedef struct ClerkRepaired
{
	char	   *id;
	char	   *details;		/* {"fields": [...], "rules": [...]} */
} ClerkRepaired;

typedef struct ClerkParsed
{
	Jsonb	   *root;			/* the whole answer, or NULL if it did not convert */
	Jsonb	   *objects;		/* a jsonb array of the objects that converted */
	int			nelems;			/* elements in the answer's list (1 for one object) */
	bool		is_list;		/* the answer is a list (array or {"data": [...]}) */
	List	   *rejects;		/* of ClerkReject * */
	List	   *repaired;		/* of ClerkRepaired * */
	ClerkJsonText text;			/* the repaired text and where its parts are */
} ClerkParsed;

/*
 * Parse body[0..len) (with a NUL at body[len]): NULL on success, else why it is not JSON at all (the
 * only failure; each element that cannot be converted is a reject, and
 * each repair is listed).
 */
extern char *clerk_parse(const char *body, size_t len, ClerkParsed *out);

/*
 * clerk_parse() in two steps: the scan (check and repair; afterwards
 * is_list, nelems and the spans of out->text are known, so that a caller
 * can act on them before the work of converting), then the conversion.
 */
extern char *clerk_parse_scan(const char *body, size_t len, ClerkParsed *out);
extern void clerk_parse_convert(ClerkParsed *out);

/* The "id" of element i of a scanned list, unescaped; NULL when it has none. */
extern char *clerk_parsed_element_id(const ClerkParsed *p, int i);

/* The same for a value that is jsonb already (nothing to repair). */
extern void clerk_parse_jsonb(Jsonb *root, ClerkParsed *out);

/* A string token of the repaired text (a span of out->text), unescaped; or NULL. */
extern char *clerk_parsed_string(const ClerkParsed *p, ClerkJsonSpan span);

/*
 * The root's "total_count" as a whole number: -1 when absent, -2 when it is
 * not a count (negative, fractional, a string, or beyond int64).
 */
extern int64 clerk_parsed_total_count(const ClerkParsed *p);

#endif							/* CLERK_PARSE_H */
