/*
 * clerk_api.h
 *		The Clerk Backend API endpoints clerk_sync uses, and their answers.
 */
#ifndef CLERK_API_H
#define CLERK_API_H

#include "utils/jsonb.h"

#include "base/entity.h"
#include "clerk/http.h"
#include "clerk/parse.h"

/* ---- the endpoints ---- */

/* GET: how many users there are ({"object": "total_count", ...}) */
#define CLERK_PATH_USERS_COUNT "/users/count"

/* The instance-wide listing of an entity (with its query string, if any). */
extern const char *clerk_list_path(ClerkEntity entity);

/* Whether the listing of `entity` takes starting_after (users only, since 2026-05-12). */
extern bool clerk_list_has_cursor(ClerkEntity entity);

/*
 * The one object: /users/{id}, /organizations/{id}, /organization_roles/{id}
 * ...; for a membership, the organization's memberships of that user; NULL
 * for an entity that Clerk has no GET of one object for (invitations,
 * domains).  The ids must be plain (clerk_plain_id()).
 */
extern char *clerk_object_path(ClerkEntity entity, const char *id, const char *organization_id,
							   const char *user_id);

/* Whether clerk_object_path() has a path for the entity. */
extern bool clerk_has_object_path(ClerkEntity entity);

/* The sessions of one user, as {data, total_count}. */
extern char *clerk_user_sessions_path(const char *user_id);

/* The memberships of one organization. */
extern char *clerk_org_memberships_path(const char *organization_id);

/* The payment attempts of one billing statement (with its query string). */
extern char *clerk_statement_payment_attempts_path(const char *statement_id);

/* Whether the listing of `entity` takes order_by (Clerk Billing's do not). */
extern bool clerk_list_has_order(ClerkEntity entity);

/* Is `id` safe to put in a URL path as it is? (Clerk ids are.) */
extern bool clerk_plain_id(const char *id);

/* ---- the answers ---- */

/*
 * Parse an answer (repaired, each object converted on its own: parse.h);
 * a body that is not JSON at all is an ERROR with SQLSTATE 08P01.
 */
extern void clerk_parse_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out);

/* The same in two steps (parse.h): the scan, which raises the same error, and then clerk_parse_convert(). */
extern void clerk_scan_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out);

/* The answer's total_count, or -1 without one; one that is no count is 08P01. */
extern int64 clerk_answer_total_count(const ClerkParsed *p, const char *what);

#endif							/* CLERK_API_H */
