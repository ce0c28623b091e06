/*
 * change_functions.c
 *		The SQL functions that queue changes to Clerk (clerk.update_user(), ...): each one's arguments, checked against the synced data.
 *
 * A change is checked when it is queued, so that a mistake is an error in
 * the caller's transaction, with nothing queued: the object must be synced
 * and live, a role among the synced roles, metadata within Clerk's size
 * limit, an address an email address.  What only Clerk can tell (a race
 * with another client) fails the change later, with Clerk's message.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "changes/queue.h"
#include "clerk/clerk_api.h"

PG_FUNCTION_INFO_V1(clerk_change_update_user);
PG_FUNCTION_INFO_V1(clerk_change_merge_user_metadata);
PG_FUNCTION_INFO_V1(clerk_change_ban_user);
PG_FUNCTION_INFO_V1(clerk_change_unban_user);
PG_FUNCTION_INFO_V1(clerk_change_lock_user);
PG_FUNCTION_INFO_V1(clerk_change_unlock_user);
PG_FUNCTION_INFO_V1(clerk_change_delete_user);
PG_FUNCTION_INFO_V1(clerk_change_create_organization);
PG_FUNCTION_INFO_V1(clerk_change_update_organization);
PG_FUNCTION_INFO_V1(clerk_change_merge_organization_metadata);
PG_FUNCTION_INFO_V1(clerk_change_delete_organization);
PG_FUNCTION_INFO_V1(clerk_change_add_organization_member);
PG_FUNCTION_INFO_V1(clerk_change_set_organization_member_role);
PG_FUNCTION_INFO_V1(clerk_change_remove_organization_member);
PG_FUNCTION_INFO_V1(clerk_change_invite_to_organization);
PG_FUNCTION_INFO_V1(clerk_change_revoke_organization_invitation);
PG_FUNCTION_INFO_V1(clerk_change_create_invitation);
PG_FUNCTION_INFO_V1(clerk_change_revoke_invitation);

/* Clerk's limit on each metadata object, as compact JSON (system limits) */
#define CLERK_METADATA_MAX_BYTES 8192

/* argument i as text, or NULL */
static char *
text_arg(FunctionCallInfo fcinfo, int i)
{
	return PG_ARGISNULL(i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/* argument i, an id: required, and the kind of id Clerk makes */
static char *
id_arg(FunctionCallInfo fcinfo, int i, const char *what)
{
	char	   *id = text_arg(fcinfo, i);

	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	if (!clerk_plain_id(id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s \"%s\" is not a Clerk id", what, id),
				 errdetail("Clerk ids are 1 to 200 letters, digits, underscores and hyphens.")));
	return id;
}

/* Error unless the query on id (and org) finds a row. */
static void
require(const char *sql, const char *id, const char *org, const char *msg_kind)
{
	const char *args[2] = {id, org};
	bool		found;

	(void) clerk_change_query(sql, org ? 2 : 1, args, &found);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 org ? errmsg("%s \"%s\" of organization \"%s\" is not among the synced ones", msg_kind, id, org)
				 : errmsg("%s \"%s\" is not among the synced ones", msg_kind, id),
				 errdetail("A change is checked against the synced tables (soft-deleted rows do not count)."),
				 errhint("Run a sync first if it was made in Clerk since the last one.")));
}

static void
require_user(const char *id)
{
	require("SELECT 1 FROM clerk.users WHERE id OPERATOR(pg_catalog.=) $1 AND deleted_at IS NULL",
			id, NULL, "user");
}

static void
require_org(const char *id)
{
	require("SELECT 1 FROM clerk.organizations WHERE id OPERATOR(pg_catalog.=) $1 AND deleted_at IS NULL",
			id, NULL, "organization");
}

static void
require_member(const char *user_id, const char *org)
{
	require("SELECT 1 FROM clerk.organization_members WHERE user_id OPERATOR(pg_catalog.=) $1 "
			"AND organization_id OPERATOR(pg_catalog.=) $2 AND deleted_at IS NULL",
			user_id, org, "membership of user");
}

/* A role key among the synced roles; any "org:" key when no role is synced. */
static void
require_role(const char *role)
{
	const char *args[1] = {role};
	bool		found;
	int64		synced;

	if (role == NULL || *role == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role must not be null or empty")));
	synced = DatumGetInt64(clerk_change_query("SELECT pg_catalog.count(*) FROM clerk.roles WHERE deleted_at IS NULL",
											  0, NULL, &found));
	if (synced == 0)
		return;					/* roles not synced: Clerk checks it */
	(void) clerk_change_query("SELECT 1 FROM clerk.roles WHERE key OPERATOR(pg_catalog.=) $1 AND deleted_at IS NULL",
							  1, args, &found);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" is not among the synced roles", role),
				 errdetail("clerk.roles holds the instance's roles; a role is named by its key, such as org:admin."),
				 errhint("Run a sync first if the role was made in Clerk since the last one.")));
}

/* Error unless no live row but (optionally) `except` has `value` in the query's column. */
static void
require_unique(const char *sql, const char *value, const char *except, const char *what)
{
	const char *args[2] = {value, except};
	bool		found;

	(void) clerk_change_query(sql, 2, args, &found);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("%s \"%s\" is taken", what, value),
				 errdetail("A synced object has it already; Clerk would refuse it.")));
}

static bool
is_email(const char *s)
{
	const char *at = strchr(s, '@');
	const char *dot;

	if (strlen(s) > 320 || at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == ';')
			return false;
	dot = strrchr(at + 1, '.');
	return dot != NULL && dot > at + 1 && dot[1] != '\0';
}

static char *
email_arg(FunctionCallInfo fcinfo, int i)
{
	char	   *e = text_arg(fcinfo, i);

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("email_address must not be null")));
	if (!is_email(e))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an email address", e),
				 errdetail("An email address has one @ with a name before it and a domain with a dot after it, and no spaces.")));
	return e;
}

/* the key of an address: ASCII letters lowered, as Clerk compares addresses */
static char *
ascii_lower(const char *s)
{
	char	   *out = pstrdup(s);

	for (char *p = out; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return out;
}

static bool
is_slug(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

/* Clerk's slug of a name: lowercase letters and digits, every other run a hyphen. */
static char *
slug_of(const char *name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const char *p = name; *p; p++)
	{
		unsigned char ch = (unsigned char) *p;

		if (ch < 128 && isalnum(ch))
			appendStringInfoChar(&buf, (char) tolower(ch));
		else if (buf.len > 0 && buf.data[buf.len - 1] != '-')
			appendStringInfoChar(&buf, '-');
	}
	while (buf.len > 0 && buf.data[buf.len - 1] == '-')
		buf.data[--buf.len] = '\0';
	return buf.data;
}

static void
check_slug(const char *slug, const char *org)
{
	if (!is_slug(slug))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an organization slug", slug),
				 errdetail("A slug is lowercase letters, digits and hyphens.")));
	require_unique("SELECT 1 FROM clerk.organizations WHERE slug OPERATOR(pg_catalog.=) $1 "
				   "AND id IS DISTINCT FROM $2 AND deleted_at IS NULL", slug, org, "slug");
}

/* Bytes of a jsonb value written as compact JSON (no space after ':' and ','). */
static int64
compact_size(Jsonb *j)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&j->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int64		spaces = 0;

	initStringInfo(&buf);
	(void) JsonbToCString(&buf, &j->root, VARSIZE(j));
	/* jsonb's text puts one space after each ':' and after each ',' */
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT && v.val.object.nPairs > 0)
			spaces += 2 * v.val.object.nPairs - 1;
		else if (tok == WJB_BEGIN_ARRAY && !v.val.array.rawScalar && v.val.array.nElems > 0)
			spaces += v.val.array.nElems - 1;
	}
	return buf.len - spaces;
}

/*
 * A metadata argument: an object, and (merged into what is stored, when
 * stored_sql says where) within Clerk's limit.  Adds it to the body.
 */
static void
metadata_arg(ClerkChange *c, FunctionCallInfo fcinfo, int i, const char *field,
			 const char *stored_sql, const char *id)
{
	Jsonb	   *patch;
	Jsonb	   *after = NULL;
	int64		size;

	if (PG_ARGISNULL(i))
		return;
	patch = PG_GETARG_JSONB_P(i);
	if (!JB_ROOT_IS_OBJECT(patch))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", field)));
	if (stored_sql != NULL)
	{
		const char *args[2] = {id, JsonbToCString(NULL, &patch->root, VARSIZE(patch))};
		bool		found;
		Datum		d = clerk_change_query(stored_sql, 2, args, &found);

		if (found)
			after = DatumGetJsonbP(d);
	}
	size = compact_size(after ? after : patch);
	if (size > CLERK_METADATA_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s would be %lld bytes, more than Clerk's limit of %d", field,
						(long long) size, CLERK_METADATA_MAX_BYTES),
				 errdetail("Clerk limits each metadata object to 8 KB of JSON%s.",
						   stored_sql ? ", as it is after the merge" : "")));
	clerk_change_jsonb(c, field, patch);
}

/*
 * The metadata arguments 1.. of a merge (fields[i] names argument i), each
 * checked merged into what `table` stores for id; at least one.
 */
static void
metadata_args(ClerkChange *c, FunctionCallInfo fcinfo, const char *const *fields, int n,
			  const char *table, const char *id)
{
	for (int i = 1; i < n; i++)
	{
		char	   *sql = psprintf("SELECT clerk.metadata_merge(%s, $2::jsonb) FROM %s "
								   "WHERE id OPERATOR(pg_catalog.=) $1", fields[i], table);

		metadata_arg(c, fcinfo, i, fields[i], sql, id);
	}
	if (c->nfields == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nothing to change"),
				 errdetail("Give at least one metadata object (public, private%s).",
						   n > 3 ? ", unsafe" : "")));
}

static char *
key2(const char *kind, const char *a, const char *b)
{
	return psprintf("%s:%s:%s", kind, a ? a : "", b ? b : "");
}

/* ---- users ---- */

Datum
clerk_change_update_user(PG_FUNCTION_ARGS)
{
	static const char *const fields[] = {NULL, "first_name", "last_name", "username", "external_id", "locale"};
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, "update_user");
	id = id_arg(fcinfo, 0, "user_id");
	require_user(id);
	for (int i = 1; i < (int) lengthof(fields); i++)
	{
		char	   *v = text_arg(fcinfo, i);

		if (v == NULL)
			continue;
		if (i == 3 && *v != '\0')
			require_unique("SELECT 1 FROM clerk.users WHERE username OPERATOR(pg_catalog.=) $1 "
						   "AND id OPERATOR(pg_catalog.<>) $2 AND deleted_at IS NULL", v, id, "username");
		if (i == 4 && *v != '\0')
			require_unique("SELECT 1 FROM clerk.users WHERE external_id OPERATOR(pg_catalog.=) $1 "
						   "AND id OPERATOR(pg_catalog.<>) $2 AND deleted_at IS NULL", v, id, "external_id");
		clerk_change_text(&c, fields[i], v);
	}
	if (c.nfields == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nothing to change"),
				 errdetail("Give at least one of first_name, last_name, username, external_id and locale.")));
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("user", NULL, id)));
}

Datum
clerk_change_merge_user_metadata(PG_FUNCTION_ARGS)
{
	static const char *const fields[] = {NULL, "public_metadata", "private_metadata", "unsafe_metadata"};
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, "merge_user_metadata");
	id = id_arg(fcinfo, 0, "user_id");
	require_user(id);
	metadata_args(&c, fcinfo, fields, lengthof(fields), "clerk.users", id);
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("user", NULL, id)));
}

static Datum
user_action(FunctionCallInfo fcinfo, const char *name)
{
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, name);
	id = id_arg(fcinfo, 0, "user_id");
	require_user(id);
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("user", NULL, id)));
}

Datum
clerk_change_ban_user(PG_FUNCTION_ARGS)
{
	return user_action(fcinfo, "ban_user");
}

Datum
clerk_change_unban_user(PG_FUNCTION_ARGS)
{
	return user_action(fcinfo, "unban_user");
}

Datum
clerk_change_lock_user(PG_FUNCTION_ARGS)
{
	return user_action(fcinfo, "lock_user");
}

Datum
clerk_change_unlock_user(PG_FUNCTION_ARGS)
{
	return user_action(fcinfo, "unlock_user");
}

Datum
clerk_change_delete_user(PG_FUNCTION_ARGS)
{
	return user_action(fcinfo, "delete_user");
}

/* ---- organizations ---- */

static void
max_memberships_arg(ClerkChange *c, FunctionCallInfo fcinfo, int i)
{
	if (PG_ARGISNULL(i))
		return;
	if (PG_GETARG_INT32(i) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_allowed_memberships must not be negative"),
				 errdetail("0 means no limit.")));
	clerk_change_int(c, "max_allowed_memberships", PG_GETARG_INT32(i));
}

static void
name_arg(ClerkChange *c, const char *name)
{
	if (name == NULL)
		return;
	if (*name == '\0' || strchr(name, '<') != NULL || strstr(name, "://") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an organization name Clerk accepts", name),
				 errdetail("A name must not be empty, nor hold HTML or a URL.")));
	clerk_change_text(c, "name", name);
}

Datum
clerk_change_create_organization(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *name = text_arg(fcinfo, 0);
	char	   *slug = text_arg(fcinfo, 1);
	char	   *created_by;

	clerk_change_begin(&c, "create_organization");
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name must not be null")));
	name_arg(&c, name);
	/* the slug is what finds the organization if the answer to its create is lost */
	if (slug == NULL)
	{
		slug = slug_of(name);
		if (*slug == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no slug can be made from the name \"%s\"", name),
					 errhint("Give a slug of lowercase letters, digits and hyphens.")));
	}
	check_slug(slug, NULL);
	clerk_change_text(&c, "slug", slug);
	if (!PG_ARGISNULL(2))
	{
		created_by = id_arg(fcinfo, 2, "created_by");
		require_user(created_by);
		clerk_change_text(&c, "created_by", created_by);
	}
	metadata_arg(&c, fcinfo, 3, "public_metadata", NULL, NULL);
	metadata_arg(&c, fcinfo, 4, "private_metadata", NULL, NULL);
	max_memberships_arg(&c, fcinfo, 5);
	PG_RETURN_INT64(clerk_change_queue(&c, NULL, NULL, key2("organization_slug", NULL, slug)));
}

Datum
clerk_change_update_organization(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *id;
	char	   *slug = text_arg(fcinfo, 2);

	clerk_change_begin(&c, "update_organization");
	id = id_arg(fcinfo, 0, "organization_id");
	require_org(id);
	name_arg(&c, text_arg(fcinfo, 1));
	if (slug != NULL)
	{
		check_slug(slug, id);
		clerk_change_text(&c, "slug", slug);
	}
	max_memberships_arg(&c, fcinfo, 3);
	if (c.nfields == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nothing to change"),
				 errdetail("Give at least one of name, slug and max_allowed_memberships.")));
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("organization", NULL, id)));
}

Datum
clerk_change_merge_organization_metadata(PG_FUNCTION_ARGS)
{
	static const char *const fields[] = {NULL, "public_metadata", "private_metadata"};
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, "merge_organization_metadata");
	id = id_arg(fcinfo, 0, "organization_id");
	require_org(id);
	metadata_args(&c, fcinfo, fields, lengthof(fields), "clerk.organizations", id);
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("organization", NULL, id)));
}

Datum
clerk_change_delete_organization(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, "delete_organization");
	id = id_arg(fcinfo, 0, "organization_id");
	require_org(id);
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("organization", NULL, id)));
}

/* ---- memberships ---- */

Datum
clerk_change_add_organization_member(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *org;
	char	   *user;
	char	   *role = text_arg(fcinfo, 2);

	clerk_change_begin(&c, "add_organization_member");
	org = id_arg(fcinfo, 0, "organization_id");
	user = id_arg(fcinfo, 1, "user_id");
	require_org(org);
	require_user(user);
	require_role(role);
	clerk_change_text(&c, "user_id", user);
	clerk_change_text(&c, "role", role);
	PG_RETURN_INT64(clerk_change_queue(&c, user, org, key2("organization_membership", org, user)));
}

Datum
clerk_change_set_organization_member_role(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *org;
	char	   *user;
	char	   *role = text_arg(fcinfo, 2);

	clerk_change_begin(&c, "set_organization_member_role");
	org = id_arg(fcinfo, 0, "organization_id");
	user = id_arg(fcinfo, 1, "user_id");
	require_member(user, org);
	require_role(role);
	clerk_change_text(&c, "role", role);
	PG_RETURN_INT64(clerk_change_queue(&c, user, org, key2("organization_membership", org, user)));
}

Datum
clerk_change_remove_organization_member(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *org;
	char	   *user;

	clerk_change_begin(&c, "remove_organization_member");
	org = id_arg(fcinfo, 0, "organization_id");
	user = id_arg(fcinfo, 1, "user_id");
	require_member(user, org);
	PG_RETURN_INT64(clerk_change_queue(&c, user, org, key2("organization_membership", org, user)));
}

/* ---- invitations ---- */

static void
expires_arg(ClerkChange *c, FunctionCallInfo fcinfo, int i)
{
	if (PG_ARGISNULL(i))
		return;
	if (PG_GETARG_INT32(i) < 1 || PG_GETARG_INT32(i) > 365)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in_days must be between 1 and 365")));
	clerk_change_int(c, "expires_in_days", PG_GETARG_INT32(i));
}

static void
url_arg(ClerkChange *c, FunctionCallInfo fcinfo, int i)
{
	char	   *url = text_arg(fcinfo, i);

	if (url == NULL)
		return;
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redirect_url must be an http or https URL")));
	clerk_change_text(c, "redirect_url", url);
}

Datum
clerk_change_invite_to_organization(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *org;
	char	   *email;
	char	   *lower;

	clerk_change_begin(&c, "invite_to_organization");
	org = id_arg(fcinfo, 0, "organization_id");
	require_org(org);
	email = email_arg(fcinfo, 1);
	require_role(text_arg(fcinfo, 2));
	clerk_change_text(&c, "email_address", email);
	clerk_change_text(&c, "role", text_arg(fcinfo, 2));
	if (!PG_ARGISNULL(3))
	{
		char	   *inviter = id_arg(fcinfo, 3, "inviter_user_id");

		require_member(inviter, org);
		clerk_change_text(&c, "inviter_user_id", inviter);
	}
	url_arg(&c, fcinfo, 4);
	metadata_arg(&c, fcinfo, 5, "public_metadata", NULL, NULL);
	expires_arg(&c, fcinfo, 6);
	lower = ascii_lower(email);
	PG_RETURN_INT64(clerk_change_queue(&c, NULL, org, key2("organization_invitation", org, lower)));
}

Datum
clerk_change_revoke_organization_invitation(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *org;
	char	   *id;

	clerk_change_begin(&c, "revoke_organization_invitation");
	org = id_arg(fcinfo, 0, "organization_id");
	id = id_arg(fcinfo, 1, "invitation_id");
	require("SELECT 1 FROM clerk.organization_invitations WHERE id OPERATOR(pg_catalog.=) $1 "
			"AND organization_id OPERATOR(pg_catalog.=) $2 AND status OPERATOR(pg_catalog.=) 'pending' "
			"AND deleted_at IS NULL", id, org, "pending invitation");
	if (!PG_ARGISNULL(2))
	{
		char	   *requester = id_arg(fcinfo, 2, "requesting_user_id");

		require_member(requester, org);
		clerk_change_text(&c, "requesting_user_id", requester);
	}
	PG_RETURN_INT64(clerk_change_queue(&c, id, org, key2("organization_invitation", org, id)));
}

Datum
clerk_change_create_invitation(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *email;
	char	   *lower;

	clerk_change_begin(&c, "create_invitation");
	email = email_arg(fcinfo, 0);
	clerk_change_text(&c, "email_address", email);
	metadata_arg(&c, fcinfo, 1, "public_metadata", NULL, NULL);
	url_arg(&c, fcinfo, 2);
	if (!PG_ARGISNULL(3))
		clerk_change_bool(&c, "notify", PG_GETARG_BOOL(3));
	expires_arg(&c, fcinfo, 4);
	lower = ascii_lower(email);
	PG_RETURN_INT64(clerk_change_queue(&c, NULL, NULL, key2("invitation", NULL, lower)));
}

Datum
clerk_change_revoke_invitation(PG_FUNCTION_ARGS)
{
	ClerkChange c;
	char	   *id;

	clerk_change_begin(&c, "revoke_invitation");
	id = id_arg(fcinfo, 0, "invitation_id");
	require("SELECT 1 FROM clerk.invitations WHERE id OPERATOR(pg_catalog.=) $1 "
			"AND status OPERATOR(pg_catalog.=) 'pending' AND deleted_at IS NULL", id, NULL, "pending invitation");
	PG_RETURN_INT64(clerk_change_queue(&c, id, NULL, key2("invitation", NULL, id)));
}
