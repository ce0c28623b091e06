/*
 * clerk_api.h
 *		The Clerk Backend API endpoints clerk_sync uses, and their answers.
 */
#ifndef CLERK_API_H
#define CLERK_API_H

#include "utils/jsonb.h"

#include "http.h"
#include "parse.h"

/*
 * Parse an answer (repaired, each object converted on its own: parse.h);
 * a body that is not JSON at all is an ERROR with SQLSTATE 08P01.
 */
extern void clerk_parse_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out);

/* The answer's total_count, or -1 without one; one that is no count is 08P01. */
extern int64 clerk_answer_total_count(const ClerkParsed *p, const char *what);

#endif							/* CLERK_API_H */
