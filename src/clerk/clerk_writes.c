/*
 * clerk_writes.c
 *		The write endpoints of the Clerk Backend API: each operation's method, path, answer, and how a lost create is found.
 *
 * Clerk has no idempotency keys: a create sent again after its answer was
 * lost may make a second object.  Each create here names what makes it
 * unique (an organization's slug, a membership's user, an invitation's
 * address), so that the object can be looked up before it is sent again.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "clerk/clerk_writes.h"
#include "clerk/json_members.h"

static const ClerkWriteOp ops[] = {
	{"update_user", "user", "PATCH", "/users/{id}", CLERK_USERS, CLERK_WRITE_OBJECT, true},
	{"merge_user_metadata", "user", "PATCH", "/users/{id}/metadata", CLERK_USERS, CLERK_WRITE_OBJECT, true},
	{"ban_user", "user", "POST", "/users/{id}/ban", CLERK_USERS, CLERK_WRITE_OBJECT, false},
	{"unban_user", "user", "POST", "/users/{id}/unban", CLERK_USERS, CLERK_WRITE_OBJECT, false},
	{"lock_user", "user", "POST", "/users/{id}/lock", CLERK_USERS, CLERK_WRITE_OBJECT, false},
	{"unlock_user", "user", "POST", "/users/{id}/unlock", CLERK_USERS, CLERK_WRITE_OBJECT, false},
	{"delete_user", "user", "DELETE", "/users/{id}", CLERK_USERS, CLERK_WRITE_GONE, false},
	{"create_organization", "organization", "POST", "/organizations", CLERK_ORGANIZATIONS, CLERK_WRITE_CREATED, false},
	{"update_organization", "organization", "PATCH", "/organizations/{id}", CLERK_ORGANIZATIONS, CLERK_WRITE_OBJECT, true},
	{"merge_organization_metadata", "organization", "PATCH", "/organizations/{id}/metadata", CLERK_ORGANIZATIONS, CLERK_WRITE_OBJECT, true},
	{"delete_organization", "organization", "DELETE", "/organizations/{id}", CLERK_ORGANIZATIONS, CLERK_WRITE_GONE, false},
	{"add_organization_member", "organization_membership", "POST", "/organizations/{org}/memberships", CLERK_MEMBERSHIPS, CLERK_WRITE_CREATED, false},
	{"set_organization_member_role", "organization_membership", "PATCH", "/organizations/{org}/memberships/{id}", CLERK_MEMBERSHIPS, CLERK_WRITE_OBJECT, true},
	{"remove_organization_member", "organization_membership", "DELETE", "/organizations/{org}/memberships/{id}", CLERK_MEMBERSHIPS, CLERK_WRITE_GONE, false},
	{"invite_to_organization", "organization_invitation", "POST", "/organizations/{org}/invitations", CLERK_ORG_INVITATIONS, CLERK_WRITE_CREATED, false},
	{"revoke_organization_invitation", "organization_invitation", "POST", "/organizations/{org}/invitations/{id}/revoke", CLERK_ORG_INVITATIONS, CLERK_WRITE_OBJECT, false},
	{"create_invitation", "invitation", "POST", "/invitations", CLERK_INVITATIONS, CLERK_WRITE_CREATED, false},
	{"revoke_invitation", "invitation", "POST", "/invitations/{id}/revoke", CLERK_INVITATIONS, CLERK_WRITE_OBJECT, false},
};

const ClerkWriteOp *
clerk_write_op(const char *name)
{
	for (size_t i = 0; i < lengthof(ops); i++)
		if (strcmp(ops[i].name, name) == 0)
			return &ops[i];
	return NULL;
}

char *
clerk_write_path(const ClerkWriteOp *op, const char *id, const char *organization_id)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = op->path; *p; p++)
	{
		if (strncmp(p, "{id}", 4) == 0)
		{
			appendStringInfoString(&buf, id ? id : "");
			p += 3;
		}
		else if (strncmp(p, "{org}", 5) == 0)
		{
			appendStringInfoString(&buf, organization_id ? organization_id : "");
			p += 4;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/* A query parameter's value, percent-encoded (RFC 3986: all but the unreserved). */
static void
append_query_value(StringInfo buf, const char *s)
{
	for (; s && *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			appendStringInfoChar(buf, (char) c);
		else
			appendStringInfo(buf, "%%%02X", c);
	}
}

char *
clerk_write_lookup_path(const ClerkWriteOp *op, const char *organization_id, JsonbContainer *args)
{
	StringInfoData buf;
	char	   *v;

	if (op->answer != CLERK_WRITE_CREATED)
		return NULL;
	initStringInfo(&buf);
	switch (op->entity)
	{
		case CLERK_ORGANIZATIONS:
			/* GET /organizations/{id} takes a slug too */
			appendStringInfoString(&buf, "/organizations/");
			append_query_value(&buf, clerk_json_string(args, "slug"));
			break;
		case CLERK_MEMBERSHIPS:
			appendStringInfo(&buf, "/organizations/%s/memberships?user_id=", organization_id);
			append_query_value(&buf, clerk_json_string(args, "user_id"));
			break;
		case CLERK_ORG_INVITATIONS:
			appendStringInfo(&buf, "/organizations/%s/invitations?status=pending&limit=100&email_address=",
							 organization_id);
			append_query_value(&buf, clerk_json_string(args, "email_address"));
			break;
		case CLERK_INVITATIONS:
			appendStringInfoString(&buf, "/invitations?paginated=true&status=pending&limit=100&query=");
			v = clerk_json_string(args, "email_address");
			append_query_value(&buf, v);
			break;
		default:
			return NULL;
	}
	return buf.data;
}

/* Whether object o is the one the create made. */
static bool
matches(const ClerkWriteOp *op, JsonbContainer *o, JsonbContainer *args)
{
	char	   *want;
	char	   *got;
	Jsonb	   *pud;

	switch (op->entity)
	{
		case CLERK_ORGANIZATIONS:
			want = clerk_json_string(args, "slug");
			got = clerk_json_string(o, "slug");
			return want && got && strcmp(want, got) == 0;
		case CLERK_MEMBERSHIPS:
			want = clerk_json_string(args, "user_id");
			pud = clerk_json_object(o, "public_user_data");
			got = pud ? clerk_json_string(&pud->root, "user_id") : NULL;
			return want && got && strcmp(want, got) == 0;
		case CLERK_ORG_INVITATIONS:
		case CLERK_INVITATIONS:
			want = clerk_json_string(args, "email_address");
			got = clerk_json_string(o, "email_address");
			return want && got && pg_strcasecmp(want, got) == 0;
		default:
			return false;
	}
}

Jsonb *
clerk_write_lookup_find(const ClerkWriteOp *op, const ClerkParsed *answer, JsonbContainer *args)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (answer->objects == NULL)
		return NULL;
	it = JsonbIteratorInit(&answer->objects->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_ELEM && v.type == jbvBinary &&
			JsonContainerIsObject(v.val.binary.data) &&
			matches(op, v.val.binary.data, args))
			return JsonbValueToJsonb(&v);
	}
	return NULL;
}
