/*
 * entity.h
 *		What clerk_sync stores: the entities, their names, tables and mapping functions.
 */
#ifndef CLERK_ENTITY_H
#define CLERK_ENTITY_H

/*
 * What clerk_sync stores: one table and one mapping function each (all
 * but the first three are SQL 1.1's, which the sync and the webhooks need
 * anyway).
 */
typedef enum ClerkEntity
{
	CLERK_USERS,
	CLERK_ORGANIZATIONS,
	CLERK_MEMBERSHIPS,
	CLERK_ORG_INVITATIONS,
	CLERK_INVITATIONS,
	CLERK_ORG_DOMAINS,
	CLERK_ROLES,
	CLERK_PERMISSIONS,
	CLERK_SESSIONS,
	CLERK_BILLING_PLANS,
	CLERK_BILLING_PRICES,
	CLERK_SUBSCRIPTION_ITEMS,
	CLERK_STATEMENTS,
	CLERK_PAYMENT_ATTEMPTS,
	CLERK_WAITLIST,
	CLERK_NENTITIES
} ClerkEntity;

#define CLERK_ENTITY_BIT(e) (1 << (e))
/* what clerk_sync.entities chooses from; the first three are always listed, sessions never */
#define CLERK_OPTIONAL_ENTITIES \
	(CLERK_ENTITY_BIT(CLERK_ORG_INVITATIONS) | CLERK_ENTITY_BIT(CLERK_INVITATIONS) | \
	 CLERK_ENTITY_BIT(CLERK_ORG_DOMAINS) | CLERK_ENTITY_BIT(CLERK_ROLES) | \
	 CLERK_ENTITY_BIT(CLERK_PERMISSIONS) | CLERK_BILLING_ENTITIES | CLERK_ENTITY_BIT(CLERK_WAITLIST))
/* Clerk Billing's: payment attempts are listed per statement */
#define CLERK_BILLING_ENTITIES \
	(CLERK_ENTITY_BIT(CLERK_BILLING_PLANS) | CLERK_ENTITY_BIT(CLERK_BILLING_PRICES) | \
	 CLERK_ENTITY_BIT(CLERK_SUBSCRIPTION_ITEMS) | CLERK_ENTITY_BIT(CLERK_STATEMENTS) | \
	 CLERK_ENTITY_BIT(CLERK_PAYMENT_ATTEMPTS))

/* An entity's table and the SQL function that maps Clerk's objects to its rows. */
typedef struct ClerkEntityInfo
{
	const char *name;			/* "users", ... (clerk_apply_page, the audit log) */
	const char *table;			/* "clerk.users", ... */
	const char *map;			/* returns SETOF the table's row type */
	/*
	 * NULL, or the function listing a page's objects when Clerk sends the
	 * entity in shapes that each leave out fields the others have (listed,
	 * and in events): each object is then merged over the stored one, so
	 * that what it does not say is kept.
	 */
	const char *merged_objects;
} ClerkEntityInfo;

extern const ClerkEntityInfo clerk_entities[CLERK_NENTITIES];

/* "users", "organizations", "memberships", "organization_invitations", ... */
extern const char *clerk_entity_name(ClerkEntity entity);
/* The entity called `name` ("users", ...); false if there is none. */
extern bool clerk_entity_by_name(const char *name, ClerkEntity *entity);
/* "clerk.users", ... */
extern const char *clerk_entity_table(ClerkEntity entity);

#endif							/* CLERK_ENTITY_H */
