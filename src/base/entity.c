/*
 * entity.c
 *		What clerk_sync stores: the entities, their names, tables and mapping functions.
 */
#include "postgres.h"

#include "base/entity.h"

/*
 * The tables' columns are not listed here: the plans read them from the
 * catalog (columns_sql), so the schema is the only place that orders them.
 */
const ClerkEntityInfo clerk_entities[CLERK_NENTITIES] = {
	{"users", "clerk.users", "clerk.map_users", NULL},
	{"organizations", "clerk.organizations", "clerk.map_organizations", NULL},
	{"memberships", "clerk.organization_members", "clerk.map_memberships", NULL},
	{"organization_invitations", "clerk.organization_invitations", "clerk.map_organization_invitations", NULL},
	{"invitations", "clerk.invitations", "clerk.map_invitations", NULL},
	{"organization_domains", "clerk.organization_domains", "clerk.map_organization_domains", NULL},
	{"roles", "clerk.roles", "clerk.map_roles", NULL},
	{"permissions", "clerk.permissions", "clerk.map_permissions", NULL},
	{"sessions", "clerk.sessions", "clerk.map_sessions", NULL},
	{"billing_plans", "clerk.billing_plans", "clerk.map_billing_plans", NULL},
	{"billing_prices", "clerk.billing_prices", "clerk.map_billing_prices", NULL},
	{"billing_subscription_items", "clerk.billing_subscription_items", "clerk.map_billing_subscription_items",
	"clerk.billing_subscription_item_objects"},
	{"billing_statements", "clerk.billing_statements", "clerk.map_billing_statements", NULL},
	{"billing_payment_attempts", "clerk.billing_payment_attempts", "clerk.map_billing_payment_attempts",
	"clerk.objects"},
	{"waitlist_entries", "clerk.waitlist_entries", "clerk.map_waitlist_entries", NULL},
};

const char *
clerk_entity_name(ClerkEntity entity)
{
	return clerk_entities[entity].name;
}

bool
clerk_entity_by_name(const char *name, ClerkEntity *entity)
{
	int			e;

	for (e = 0; e < CLERK_NENTITIES; e++)
		if (strcmp(clerk_entities[e].name, name) == 0)
		{
			*entity = (ClerkEntity) e;
			return true;
		}
	return false;
}

const char *
clerk_entity_table(ClerkEntity entity)
{
	return clerk_entities[entity].table;
}
