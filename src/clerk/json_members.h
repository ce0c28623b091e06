/*
 * json_members.h
 *		Members of a jsonb object, read the one way every part of clerk_sync reads them.
 *
 * Each getter answers NULL (or -1, or false) when the container is no
 * object, the member is missing, or it has another type: content Clerk
 * sends is never an error here.
 */
#ifndef CLERK_JSON_MEMBERS_H
#define CLERK_JSON_MEMBERS_H

#include "utils/jsonb.h"

/* The member `key` as a string (palloc'd), or NULL. */
extern char *clerk_json_string(JsonbContainer *obj, const char *key);

/* The member `key` as an object, a jsonb value of its own (palloc'd), or NULL. */
extern Jsonb *clerk_json_object(JsonbContainer *obj, const char *key);

/* The member `key` as an array, a jsonb value of its own (palloc'd), or NULL. */
extern Jsonb *clerk_json_array(JsonbContainer *obj, const char *key);

/* Whether the member `key` is a number equal to value. */
extern bool clerk_json_number_is(JsonbContainer *obj, const char *key, int64 value);

/*
 * The member `key` as a number of milliseconds in [0, 1e15), or -1;
 * seconds_too takes a value below 1e11 as seconds (a Unix time in seconds).
 */
extern int64 clerk_json_ms(JsonbContainer *obj, const char *key, bool seconds_too);

#endif							/* CLERK_JSON_MEMBERS_H */
