/*
 * clerk_api.h
 *		The Clerk Backend API endpoints clerk_sync uses, and their answers.
 */
#ifndef CLERK_API_H
#define CLERK_API_H

#include "utils/jsonb.h"

#include "http.h"

/* Parse an answer body; a malformed body is an ERROR with SQLSTATE 08P01. */
extern Jsonb *clerk_parse_json(const char *body, const char *what);

/* Member `key` of a JSON object as a number, or -1 when absent or not one. */
extern int64 clerk_json_int(Jsonb *obj, const char *key);

/* Number of elements of a JSON array (or of its "data" member). */
extern int	clerk_json_array_length(Jsonb *j);

#endif							/* CLERK_API_H */
