/*
 * claims.c
 *		Row-level security: the Clerk session token's claims, and the token user's synced memberships.
 *
 * PostgREST and Supabase put the verified token's payload in the setting
 * request.jwt.claims for each request; an application can SET LOCAL it.
 * Policies call these functions once per row, so the setting is parsed once
 * per backend for each text it holds, and the memberships of the token's
 * user are read once per call site and snapshot.  Claims are read the way
 * Clerk's own SDK reads them, for both token versions (doc/row-level-security.md):
 * anything malformed is absent (NULL, no permission), never an error; only a
 * setting that is not JSON at all is one.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "clerk/json_members.h"
#include "clerk/json_repair.h"
#include "rls/reader_query.h"
#include "rls/snapshot_key.h"

PG_FUNCTION_INFO_V1(clerk_rls_user_id);
PG_FUNCTION_INFO_V1(clerk_rls_org_id);
PG_FUNCTION_INFO_V1(clerk_rls_org_role);
PG_FUNCTION_INFO_V1(clerk_rls_org_slug);
PG_FUNCTION_INFO_V1(clerk_rls_org_permissions);
PG_FUNCTION_INFO_V1(clerk_rls_has_permission);
PG_FUNCTION_INFO_V1(clerk_rls_has_plan);
PG_FUNCTION_INFO_V1(clerk_rls_has_feature);
PG_FUNCTION_INFO_V1(clerk_rls_is_member);
PG_FUNCTION_INFO_V1(clerk_rls_org_role_in);

#define CLAIMS_SETTING "request.jwt.claims"

/*
 * What a token says, as the functions answer it.  Without an active
 * organization (org_id NULL) every org_* value is absent too.
 */
typedef struct Claims
{
	char	   *user_id;		/* sub */
	char	   *org_id;
	char	   *org_role;		/* with its org: prefix */
	char	   *org_slug;
	int			npermissions;	/* -1: the token states none */
	char	  **permissions;	/* full keys, org:<feature>:<action> */
	List	   *plans;			/* v2 pla's entries, "scope:slug" (of char *) */
	List	   *features;		/* v2 fea's entries, "scope:slug" */
} Claims;

static const Claims no_claims = {NULL, NULL, NULL, NULL, -1, NULL, NIL, NIL};

/* The claims of the setting's text claims_text (NULL: none parsed), in claims_cxt. */
static MemoryContext claims_cxt = NULL;
static char *claims_text = NULL;
static Claims claims;

/* A string claim: NULL unless it is a non-empty string. */
static char *
nonempty(char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Whether s is empty or white space only (what a reset setting holds). */
static bool
is_blank(const char *s)
{
	while (is_space(*s))
		s++;
	return *s == '\0';
}

/* The entries of a comma-separated list, each trimmed of white space. */
static List *
split_list(const char *s)
{
	List	   *out = NIL;

	for (;;)
	{
		const char *end = strchr(s, ',');
		const char *stop = end != NULL ? end : s + strlen(s);
		const char *start = s;

		while (start < stop && is_space(*start))
			start++;
		while (stop > start && is_space(stop[-1]))
			stop--;
		out = lappend(out, pnstrdup(start, stop - start));
		if (end == NULL)
			return out;
		s = end + 1;
	}
}

/*
 * The low nbits bits of the whole number that s writes in decimal, into
 * bits[0 .. nbits) (bit 0 the least significant), decoded exactly whatever
 * its size: only the number modulo 2^nbits matters, kept in 32-bit limbs.
 * false, and no bit, when s is not all digits.
 */
static bool
mask_bits(const char *s, int nbits, bool *bits)
{
	int			nlimbs = (nbits + 31) / 32;
	uint32	   *limbs;

	if (*s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	limbs = palloc0(Max(nlimbs, 1) * sizeof(uint32));
	for (const char *p = s; *p != '\0'; p++)
	{
		uint64		carry = (uint64) (*p - '0');

		for (int l = 0; l < nlimbs; l++)
		{
			uint64		t = (uint64) limbs[l] * 10 + carry;

			limbs[l] = (uint32) t;
			carry = t >> 32;
		}
	}
	for (int j = 0; j < nbits; j++)
		bits[j] = (limbs[j / 32] >> (j % 32)) & 1;
	pfree(limbs);
	return true;
}

/* An entry of fea, "scope:feature": whether its scope is the organization's, and the feature. */
typedef struct Feature
{
	bool		org;			/* scope o, ou or uo */
	const char *name;			/* after the first colon; NULL without one */
} Feature;

static void
parse_feature(const char *entry, Feature *f)
{
	const char *colon = strchr(entry, ':');

	f->name = colon != NULL ? colon + 1 : NULL;
	f->org = strncmp(entry, "o:", 2) == 0 || strncmp(entry, "ou:", 3) == 0 ||
		strncmp(entry, "uo:", 3) == 0;
}

/*
 * A v2 token's permissions: fpm's i-th mask pairs with fea's i-th entry
 * (Clerk's documentation), or with the i-th organization feature when fpm
 * has exactly one mask per organization feature and not one per entry
 * (Clerk's JavaScript SDK); bit j of a mask grants per's j-th action.
 * A mask that is not all digits grants nothing, and so does a feature
 * without a scope, of another scope, or without a name.
 */
static void
decode_permissions(const char *fea, const char *per, const char *fpm, Claims *c)
{
	List	   *entries = split_list(fea);
	List	   *actions = split_list(per);
	List	   *masks = split_list(fpm);
	int			nentries = list_length(entries);
	int			nactions = list_length(actions);
	int			nmasks = list_length(masks);
	Feature    *features = palloc(nentries * sizeof(Feature));
	bool	   *bits = palloc(nactions * sizeof(bool));
	int			norg = 0;
	int			next_org = 0;
	bool		per_org;
	List	   *granted = NIL;
	ListCell   *lc;
	int			n = 0;

	for (int i = 0; i < nentries; i++)
	{
		parse_feature(list_nth(entries, i), &features[i]);
		if (features[i].org)
			norg++;
	}
	per_org = nmasks != nentries && nmasks == norg;

	for (int i = 0; i < nentries; i++)
	{
		Feature    *f = &features[i];
		int			m;

		if (per_org && !f->org)
			continue;
		m = per_org ? next_org++ : i;
		if (m >= nmasks)
			break;
		if (!f->org || f->name[0] == '\0' ||
			!mask_bits(list_nth(masks, m), nactions, bits))
			continue;
		for (int j = 0; j < nactions; j++)
		{
			const char *action = list_nth(actions, j);

			if (bits[j] && action[0] != '\0')
				granted = lappend(granted, psprintf("org:%s:%s", f->name, action));
		}
	}

	c->npermissions = list_length(granted);
	c->permissions = palloc(Max(c->npermissions, 1) * sizeof(char *));
	foreach(lc, granted)
		c->permissions[n++] = lfirst(lc);
}

/* v1: org_id, org_role, org_slug and org_permissions, as they are. */
static void
parse_v1(JsonbContainer *root, Claims *c)
{
	Jsonb	   *list;

	c->org_id = nonempty(clerk_json_string(root, "org_id"));
	if (c->org_id == NULL)
		return;
	c->org_role = nonempty(clerk_json_string(root, "org_role"));
	c->org_slug = nonempty(clerk_json_string(root, "org_slug"));
	list = clerk_json_array(root, "org_permissions");
	if (list == NULL)
		return;
	/* the strings of the list; anything else in it grants nothing */
	c->permissions = palloc(Max(JsonContainerSize(&list->root), 1) * sizeof(char *));
	c->npermissions = 0;
	for (uint32 i = 0; i < JsonContainerSize(&list->root); i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&list->root, i);

		if (v != NULL && v->type == jbvString && v->val.string.len > 0)
			c->permissions[c->npermissions++] = pnstrdup(v->val.string.val, v->val.string.len);
	}
}

/* v2: the o claim (id, rol, slg, per, fpm), and the top-level pla and fea. */
static void
parse_v2(JsonbContainer *root, Claims *c)
{
	Jsonb	   *o = clerk_json_object(root, "o");
	char	   *rol;
	char	   *pla;
	char	   *fea;
	char	   *per;
	char	   *fpm;

	/* Clerk Billing's plans and features, of the user (u:) and the active organization (o:) */
	pla = nonempty(clerk_json_string(root, "pla"));
	fea = nonempty(clerk_json_string(root, "fea"));
	c->plans = pla != NULL ? split_list(pla) : NIL;
	c->features = fea != NULL ? split_list(fea) : NIL;
	if (o == NULL)
		return;
	c->org_id = nonempty(clerk_json_string(&o->root, "id"));
	if (c->org_id == NULL)
		return;
	rol = nonempty(clerk_json_string(&o->root, "rol"));
	c->org_role = rol != NULL ? psprintf("org:%s", rol) : NULL;
	c->org_slug = nonempty(clerk_json_string(&o->root, "slg"));

	c->npermissions = 0;
	per = nonempty(clerk_json_string(&o->root, "per"));
	fpm = nonempty(clerk_json_string(&o->root, "fpm"));
	if (fea != NULL && per != NULL && fpm != NULL)
		decode_permissions(fea, per, fpm, c);
}

/*
 * The claims in text: an error if it is not JSON; nothing but the claims
 * that are there, and well formed, otherwise.  Only the number 2 in v makes
 * a v2 token, as in Clerk's SDK; anything else is read as v1.
 */
static void
parse_claims(const char *text, Claims *c)
{
	ClerkJsonText repaired;
	char	   *err = clerk_json_repair(text, strlen(text), &repaired);
	Jsonb	   *jb;

	*c = no_claims;
	if (err != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("setting \"%s\" is not JSON", CLAIMS_SETTING),
				 errdetail("The setting must hold the session token's claims as a JSON object, and its text is not JSON: %s.", err),
				 errhint("Set it to the payload of the verified token, as PostgREST and Supabase do, or reset it.")));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(repaired.text)));
	if (!JB_ROOT_IS_OBJECT(jb))
		return;
	c->user_id = nonempty(clerk_json_string(&jb->root, "sub"));
	if (clerk_json_number_is(&jb->root, "v", 2))
		parse_v2(&jb->root, c);
	else
		parse_v1(&jb->root, c);
}

/* The claims of the setting as it is now, parsed once for each text it holds. */
static const Claims *
current_claims(void)
{
	const char *setting = GetConfigOption(CLAIMS_SETTING, true, false);
	MemoryContext old;

	if (setting == NULL || is_blank(setting))
		return &no_claims;
	if (claims_text != NULL && strcmp(claims_text, setting) == 0)
		return &claims;

	if (claims_cxt == NULL)
		claims_cxt = AllocSetContextCreate(TopMemoryContext, "clerk_sync claims",
										   ALLOCSET_SMALL_SIZES);
	claims_text = NULL;
	MemoryContextReset(claims_cxt);
	old = MemoryContextSwitchTo(claims_cxt);
	parse_claims(setting, &claims);
	claims_text = pstrdup(setting);
	MemoryContextSwitchTo(old);
	return &claims;
}

/* A text result, or NULL. */
static Datum
text_or_null(FunctionCallInfo fcinfo, const char *s)
{
	if (s == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(s));
}

/* clerk.user_id() returns text: the token's sub */
Datum
clerk_rls_user_id(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, current_claims()->user_id);
}

/* clerk.org_id() returns text: the active organization's id */
Datum
clerk_rls_org_id(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, current_claims()->org_id);
}

/* clerk.org_role() returns text: the user's role in the active organization, org:<role> */
Datum
clerk_rls_org_role(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, current_claims()->org_role);
}

/* clerk.org_slug() returns text: the active organization's slug */
Datum
clerk_rls_org_slug(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, current_claims()->org_slug);
}

/* clerk.org_permissions() returns text[]: the user's permissions in the active organization */
Datum
clerk_rls_org_permissions(PG_FUNCTION_ARGS)
{
	const Claims *c = current_claims();
	Datum	   *elems;

	if (c->org_id == NULL || c->npermissions < 0)
		PG_RETURN_NULL();
	elems = palloc(Max(c->npermissions, 1) * sizeof(Datum));
	for (int i = 0; i < c->npermissions; i++)
		elems[i] = PointerGetDatum(cstring_to_text(c->permissions[i]));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, c->npermissions, TEXTOID, -1, false, TYPALIGN_INT));
}

/* clerk.has_permission(permission text) returns boolean: false without an active organization */
Datum
clerk_rls_has_permission(PG_FUNCTION_ARGS)
{
	const Claims *c = current_claims();
	char	   *permission = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (c->org_id == NULL)
		PG_RETURN_BOOL(false);
	for (int i = 0; i < c->npermissions; i++)
		if (strcmp(c->permissions[i], permission) == 0)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/*
 * Whether a scoped list of the token (pla or fea: "u:free,o:pro") names
 * `wanted` as Clerk's has({ plan }) and has({ feature }) read it: "org:x"
 * asks for x in an entry whose scope has o, "user:x" in one whose scope has
 * u, and a bare "x" (or any other prefix) in any entry.
 */
static bool
scoped_list_has(List *entries, const char *wanted)
{
	const char *colon = strchr(wanted, ':');
	const char *name = colon != NULL ? colon + 1 : wanted;
	char		scope = '\0';
	ListCell   *lc;

	if (colon != NULL && colon - wanted == 3 && strncmp(wanted, "org", 3) == 0)
		scope = 'o';
	else if (colon != NULL && colon - wanted == 4 && strncmp(wanted, "user", 4) == 0)
		scope = 'u';
	if (*name == '\0')
		return false;
	foreach(lc, entries)
	{
		const char *entry = (const char *) lfirst(lc);
		const char *sep = strchr(entry, ':');

		if (sep == NULL || strcmp(sep + 1, name) != 0)
			continue;
		if (scope == '\0' || memchr(entry, scope, sep - entry) != NULL)
			return true;
	}
	return false;
}

/* clerk.has_plan(plan text) returns boolean: the token's pla names it */
Datum
clerk_rls_has_plan(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(scoped_list_has(current_claims()->plans, text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/* clerk.has_feature(feature text) returns boolean: the token's fea names it */
Datum
clerk_rls_has_feature(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(scoped_list_has(current_claims()->features, text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/* A live membership of the token's user. */
typedef struct Membership
{
	char	   *org_id;
	char	   *role;			/* NULL when the row has none */
} Membership;

/*
 * A call site's memberships (in its fn_extra): one user's live
 * memberships, read under one snapshot.  A query's call site lives for
 * that query; one in a PL/pgSQL expression for the transaction, which is
 * why the snapshot is part of the key.
 */
typedef struct Memberships
{
	MemoryContext cxt;			/* what follows; reset for each load */
	char	   *user_id;		/* whose; NULL before the first load */
	ClerkSnapshotKey snapshot;
	int			n;
	Membership *rows;			/* sorted by org_id, byte order */
} Memberships;

/* ordered as strcmp orders, so that bsearch finds them; one per organization */
#define MEMBERSHIPS_SQL \
	"SELECT organization_id, role FROM clerk.organization_members " \
	"WHERE user_id = $1 AND deleted_at IS NULL " \
	"ORDER BY organization_id COLLATE \"C\", updated_at DESC NULLS LAST, id COLLATE \"C\""

/* Keep the rows of MEMBERSHIPS_SQL in m (a Memberships *), in its memory. */
static void
keep_memberships(void *arg)
{
	Memberships *m = (Memberships *) arg;
	MemoryContext old = MemoryContextSwitchTo(m->cxt);

	m->rows = palloc(Max(SPI_processed, 1) * sizeof(Membership));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *org_id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		/* the newest of two rows for one organization */
		if (org_id == NULL || (m->n > 0 && strcmp(m->rows[m->n - 1].org_id, org_id) == 0))
			continue;
		m->rows[m->n].org_id = org_id;
		m->rows[m->n].role = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		m->n++;
	}
	clerk_snapshot_remember(&m->snapshot);
	MemoryContextSwitchTo(old);
}

/*
 * Read user_id's live memberships into m, as the reader, with one index
 * scan on organization_members_user_id_idx, under the caller's snapshot.
 */
static void
load_memberships(Memberships *m, const char *user_id)
{
	static SPIPlanPtr plan = NULL;
	char	   *user;

	MemoryContextReset(m->cxt);
	m->user_id = NULL;
	m->n = 0;
	user = MemoryContextStrdup(m->cxt, user_id);
	clerk_reader_query(&plan, MEMBERSHIPS_SQL, user, keep_memberships, m);
	m->user_id = user;
}

static int
membership_cmp(const void *key, const void *row)
{
	return strcmp((const char *) key, ((const Membership *) row)->org_id);
}

/*
 * The token user's live membership in org_id, or NULL (no user, no such
 * membership); loaded once per call site while user and snapshot stay.
 */
static const Membership *
find_membership(FunctionCallInfo fcinfo, const char *org_id)
{
	const Claims *c = current_claims();
	Memberships *m = (Memberships *) fcinfo->flinfo->fn_extra;

	if (c->user_id == NULL)
		return NULL;
	if (m == NULL)
	{
		m = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(Memberships));
		m->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "clerk_sync memberships",
									   ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = m;
	}
	if (m->user_id == NULL || strcmp(m->user_id, c->user_id) != 0 || !clerk_snapshot_same(&m->snapshot))
		load_memberships(m, c->user_id);
	return bsearch(org_id, m->rows, m->n, sizeof(Membership), membership_cmp);
}

/* clerk.is_member(org_id text) returns boolean: a live membership of the token's user */
Datum
clerk_rls_is_member(PG_FUNCTION_ARGS)
{
	char	   *org_id = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(find_membership(fcinfo, org_id) != NULL);
}

/* clerk.org_role_in(org_id text) returns text: the token user's role there, from that membership */
Datum
clerk_rls_org_role_in(PG_FUNCTION_ARGS)
{
	char	   *org_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const Membership *m = find_membership(fcinfo, org_id);

	return text_or_null(fcinfo, m != NULL ? m->role : NULL);
}
