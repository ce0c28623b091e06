/*
 * clerk_api.c
 *		The Clerk Backend API as clerk_sync knows it: paths and answer shapes.
 */
#include "postgres.h"

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "base/base.h"
#include "clerk/clerk_api.h"
#include "clerk/http.h"
#include "clerk/parse.h"

const char *
clerk_list_path(ClerkEntity entity)
{
	switch (entity)
	{
		case CLERK_USERS:
			return "/users";
		case CLERK_ORGANIZATIONS:
			return "/organizations?include_members_count=true";
		case CLERK_MEMBERSHIPS:
			return "/organization_memberships";
		case CLERK_ORG_INVITATIONS:
			return "/organization_invitations";
		case CLERK_INVITATIONS:
			/* as {data, total_count}; without a status, revoked ones are left out */
			return "/invitations?paginated=true";
		case CLERK_ORG_DOMAINS:
			return "/organization_domains";
		case CLERK_ROLES:
			return "/organization_roles";
		case CLERK_PERMISSIONS:
			return "/organization_permissions";
		case CLERK_BILLING_PLANS:
			return "/billing/plans?paginated=true";
		case CLERK_BILLING_PRICES:
			return "/billing/prices?paginated=true";
		case CLERK_SUBSCRIPTION_ITEMS:
			/* every status; without include_free, items of free plans are left out */
			return "/billing/subscription_items?paginated=true&include_free=true";
		case CLERK_STATEMENTS:
			return "/billing/statements?paginated=true";
		case CLERK_WAITLIST:
			return "/waitlist_entries";
		default:
			elog(ERROR, "unknown clerk_sync entity %d", (int) entity);
	}
	return NULL;				/* keep the compiler quiet */
}

bool
clerk_list_has_cursor(ClerkEntity entity)
{
	return entity == CLERK_USERS;
}

char *
clerk_object_path(ClerkEntity entity, const char *id, const char *organization_id,
				  const char *user_id)
{
	switch (entity)
	{
		case CLERK_USERS:
			return psprintf("/users/%s", id);
		case CLERK_ORGANIZATIONS:
			return psprintf("/organizations/%s", id);
		case CLERK_MEMBERSHIPS:
			return psprintf("/organizations/%s/memberships?user_id=%s&limit=100",
							organization_id, user_id);
		case CLERK_ROLES:
			return psprintf("/organization_roles/%s", id);
		case CLERK_PERMISSIONS:
			return psprintf("/organization_permissions/%s", id);
		case CLERK_SESSIONS:
			return psprintf("/sessions/%s", id);
		case CLERK_STATEMENTS:
			return psprintf("/billing/statements/%s", id);
		default:
			/* invitations, domains, plans, prices, subscription items, the waitlist: no GET of one object */
			return NULL;
	}
	return NULL;
}

bool
clerk_has_object_path(ClerkEntity entity)
{
	/* clerk_object_path() is the one list of what has a path */
	return clerk_object_path(entity, "", "", "") != NULL;
}

char *
clerk_user_sessions_path(const char *user_id)
{
	return psprintf("/sessions?user_id=%s&paginated=true", user_id);
}

char *
clerk_org_memberships_path(const char *organization_id)
{
	return psprintf("/organizations/%s/memberships", organization_id);
}

char *
clerk_statement_payment_attempts_path(const char *statement_id)
{
	return psprintf("/billing/statements/%s/payment_attempts?paginated=true", statement_id);
}

bool
clerk_list_has_order(ClerkEntity entity)
{
	/* Clerk Billing's listings have one order, newest first (prices: by amount) */
	return !(CLERK_ENTITY_BIT(entity) & CLERK_BILLING_ENTITIES);
}

bool
clerk_plain_id(const char *id)
{
	const char *p;

	if (id == NULL || *id == '\0' || strlen(id) > 200)
		return false;
	for (p = id; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-'))
			return false;
	return true;
}

void
clerk_scan_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out)
{
	char	   *err = clerk_parse_scan(res->body ? res->body : "", res->body ? res->len : 0, out);

	if (err != NULL)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk sent malformed JSON for %s", what),
				 errdetail("The answer is not JSON: %s.", err)));
}

void
clerk_parse_answer(const ClerkHttpResult *res, const char *what, ClerkParsed *out)
{
	clerk_scan_answer(res, what, out);
	clerk_parse_convert(out);
}

int64
clerk_answer_total_count(const ClerkParsed *p, const char *what)
{
	int64		n = clerk_parsed_total_count(p);

	if (n == -2)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_BAD_RESPONSE),
				 errmsg("Clerk's answer to %s has an invalid total_count", what),
				 errdetail("A total_count is a whole number from 0 to 9223372036854775807.")));
	return n;
}
