/*
 * credentials.c
 *		Third-party API credentials (Cliniko, Chatwoot): their fields, the
 *		SQL functions that store, read and deactivate them, and key rotation.
 *
 * Credentials are checked against their service's fields, then sealed
 * (seal.c) for their row of clerk.api_credentials in jsonb's binary form,
 * so opening them yields the function result itself and no parser copies
 * of the secrets are made.  clerk_rotate_encryption_key() re-seals every
 * sealed row, credentials and stored secrets alike, under the newest key.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "base/compat.h"
#include "base/subtransaction.h"
#include "base/url.h"
#include "store/store.h"
#include "vault/keyring.h"
#include "vault/seal.h"
#include "vault/secret_text.h"
#include "vault/secrets.h"
#include "vault/vault_spi.h"

PG_FUNCTION_INFO_V1(clerk_store_credentials);
PG_FUNCTION_INFO_V1(clerk_get_credentials);
PG_FUNCTION_INFO_V1(clerk_deactivate_credentials);
PG_FUNCTION_INFO_V1(clerk_rotate_encryption_key);

#define CREDENTIALS_MAX_FIELD_LEN	1024

/*
 * What each service's credentials hold.  A field without a default is
 * required; no other field is accepted.
 */
typedef enum ServiceFieldKind
{
	FIELD_SECRET,				/* non-empty token: no spaces or controls */
	FIELD_SHARD,				/* a Cliniko shard */
	FIELD_ACCOUNT_ID,			/* positive integer, as number or digits */
	FIELD_URL					/* http(s) URL without user information */
} ServiceFieldKind;

typedef struct ServiceField
{
	const char *name;
	ServiceFieldKind kind;
	const char *default_value;
} ServiceField;

#define SERVICE_MAX_FIELDS 3

typedef struct Service
{
	const char *name;
	const char *field_list;		/* for messages */
	int			nfields;
	ServiceField fields[SERVICE_MAX_FIELDS];
} Service;

static const Service services[] = {
	{"cliniko", "api_key and region", 2,
		{{"api_key", FIELD_SECRET, NULL},
		 {"region", FIELD_SHARD, NULL}}},
	{"chatwoot", "api_token, account_id and base_url (optional)", 3,
		{{"api_token", FIELD_SECRET, NULL},
		 {"account_id", FIELD_ACCOUNT_ID, NULL},
		 {"base_url", FIELD_URL, "https://app.chatwoot.com"}}},
};

/* Cliniko shards: the suffix of a Cliniko API key, and its API host */
static const char *const cliniko_shards[] = {
	"au1", "au2", "au3", "au4", "uk1", "ca1", "us1", NULL
};
#define CLINIKO_SHARD_LIST "au1, au2, au3, au4, uk1, ca1 and us1"

/*
 * A table of sealed values, as rotation walks it.  select_sql returns, for
 * every row whose value is not sealed under key $1, locked: the row's key,
 * the scope and name its value is sealed for, key_id, and the sealed value.
 * update_sql stores $1, sealed under key $2, in the row whose key is $3.
 */
typedef struct SealedTable
{
	ClerkSealPurpose purpose;
	const char *select_sql;
	const char *update_sql;
	Oid			row_key_type;
} SealedTable;

static const SealedTable sealed_credentials = {
	CLERK_SEAL_CREDENTIALS,
	"SELECT id, organization_id, service_name, key_id, credentials_encrypted, NOT is_active"
	" FROM clerk.api_credentials"
	" WHERE key_id <> $1 OR get_byte(credentials_encrypted, 0) <> 2 ORDER BY id FOR UPDATE",
	"UPDATE clerk.api_credentials"
	" SET credentials_encrypted = $1, key_id = $2 WHERE id = $3",
	INT8OID
};

static const SealedTable sealed_secrets = {
	CLERK_SEAL_SECRET,
	"SELECT name, ''::text AS scope, name, key_id, value_encrypted, false"
	" FROM clerk.secrets"
	" WHERE key_id <> $1 OR get_byte(value_encrypted, 0) <> 2 ORDER BY name FOR UPDATE",
	"UPDATE clerk.secrets"
	" SET value_encrypted = $1, key_id = $2 WHERE name = $3",
	TEXTOID
};


/* ---------------------------------------------------------------------
 * Validating credentials
 * ---------------------------------------------------------------------
 */

static const Service *
find_service(const char *name)
{
	for (int i = 0; i < (int) lengthof(services); i++)
	{
		if (strcmp(services[i].name, name) == 0)
			return &services[i];
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown service \"%s\"", name),
			 errhint("Credentials can be stored for the services cliniko and chatwoot.")));
	return NULL;				/* keep compiler quiet */
}

/* true if s is 1 to 18 digits, not all zero */
static bool
is_positive_integer(const char *s, int len)
{
	bool		nonzero = false;

	if (len < 1 || len > 18)
		return false;
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (s[i] != '0')
			nonzero = true;
	}
	return nonzero;
}

/*
 * Check one field's value.  Messages name the field, never its value: a
 * secret pasted into the wrong field must not reach the server log.
 */
static void
check_field(const Service *service, const ServiceField *field,
			const JsonbValue *v)
{
	const char *s = (v->type == jbvString) ? v->val.string.val : NULL;
	int			len = (v->type == jbvString) ? v->val.string.len : 0;

	switch (field->kind)
	{
		case FIELD_SECRET:
			if (s == NULL || len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of %s credentials must be a non-empty string",
								field->name, service->name)));
			if (len > CREDENTIALS_MAX_FIELD_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of %s credentials is too long",
								field->name, service->name),
						 errdetail("It may be at most %d bytes.", CREDENTIALS_MAX_FIELD_LEN)));
			if (clerk_has_blank_or_control(s, len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of %s credentials contains a space or a control character",
								field->name, service->name),
						 errdetail("Keys and tokens are sent in HTTP headers, which cannot carry them.")));
			break;

		case FIELD_SHARD:
			{
				bool		known = false;

				for (int i = 0; s != NULL && cliniko_shards[i] != NULL; i++)
				{
					if ((size_t) len == strlen(cliniko_shards[i]) &&
						memcmp(s, cliniko_shards[i], len) == 0)
						known = true;
				}
				if (!known)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("field \"%s\" of %s credentials is not a known Cliniko shard",
									field->name, service->name),
							 errdetail("Known shards are " CLINIKO_SHARD_LIST "."),
							 errhint("The shard is the suffix of the Cliniko API key, such as au1.")));
				break;
			}

		case FIELD_ACCOUNT_ID:
			{
				bool		ok;

				if (v->type == jbvNumeric)
				{
					char	   *digits;

					digits = DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(v->val.numeric)));
					ok = is_positive_integer(digits, strlen(digits));
				}
				else
					ok = (s != NULL && is_positive_integer(s, len));
				if (!ok)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("field \"%s\" of %s credentials must be a positive integer",
									field->name, service->name),
							 errdetail("Give it as a JSON number or as a string of digits.")));
				break;
			}

		case FIELD_URL:
			if (s == NULL || clerk_url_check(s, len) != CLERK_URL_OK ||
				len > CREDENTIALS_MAX_FIELD_LEN || clerk_has_blank_or_control(s, len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of %s credentials must be an http or https URL",
								field->name, service->name),
						 errdetail("It must start with https:// or http://, name a host, be at most %d bytes, and carry no user name, password, spaces or control characters.",
								   CREDENTIALS_MAX_FIELD_LEN)));
			break;
	}
}

/*
 * Check credentials against the service's fields and return them as a new
 * jsonb value holding exactly those fields, defaults filled in.
 */
static Jsonb *
check_credentials(const Service *service, Jsonb *input)
{
	JsonbValue	values[SERVICE_MAX_FIELDS];
	bool		present[SERVICE_MAX_FIELDS] = {false};
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *result;

	if (!JB_ROOT_IS_OBJECT(input))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s credentials must be a JSON object", service->name),
				 errdetail("The %s service takes the fields %s.",
						   service->name, service->field_list)));

	it = JsonbIteratorInit(&input->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			f;

		if (tok != WJB_KEY)
			continue;
		for (f = 0; f < service->nfields; f++)
		{
			if ((size_t) v.val.string.len == strlen(service->fields[f].name) &&
				memcmp(v.val.string.val, service->fields[f].name,
					   v.val.string.len) == 0)
				break;
		}
		if (f == service->nfields)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unexpected field \"%s\" in %s credentials",
							pnstrdup(v.val.string.val, v.val.string.len),
							service->name),
					 errdetail("The %s service takes the fields %s.",
							   service->name, service->field_list)));

		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		check_field(service, &service->fields[f], &v);
		values[f] = v;
		present[f] = true;
	}

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int f = 0; f < service->nfields; f++)
	{
		const ServiceField *field = &service->fields[f];
		JsonbValue	key;

		if (!present[f])
		{
			if (field->default_value == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("missing field \"%s\" in %s credentials",
								field->name, service->name),
						 errdetail("The %s service takes the fields %s.",
								   service->name, service->field_list)));
			values[f].type = jbvString;
			values[f].val.string.val = (char *) field->default_value;
			values[f].val.string.len = strlen(field->default_value);
		}
		key.type = jbvString;
		key.val.string.val = (char *) field->name;
		key.val.string.len = strlen(field->name);
		(void) pushJsonbValue(&state, WJB_KEY, &key);
		(void) pushJsonbValue(&state, WJB_VALUE, &values[f]);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	return JsonbValueToJsonb(result);
}


/* ---------------------------------------------------------------------
 * Rows of clerk.api_credentials (SPI connected, as the writer)
 * ---------------------------------------------------------------------
 */

/*
 * Error unless the organization is in clerk.organizations and not deleted.
 * Its row stays locked until the end of the transaction, which keeps it
 * from being deleted meanwhile and makes concurrent stores for the same
 * organization take turns instead of colliding on the active-row index.
 */
static void
check_organization(const char *organization_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(organization_id);
	clerk_vault_exec("SELECT deleted_at IS NOT NULL FROM clerk.organizations"
					 " WHERE id = $1 FOR NO KEY UPDATE",
					 1, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("organization \"%s\" does not exist", organization_id),
				 errdetail("Credentials are stored only for organizations in clerk.organizations."),
				 errhint("Sync the organizations from Clerk first, or check the organization id.")));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("organization \"%s\" is deleted", organization_id),
				 errdetail("Clerk reported the organization as deleted, and credentials are not stored for deleted organizations.")));
}

/*
 * A value opened as the row `from` says and sealed again as `to` says,
 * under the newest key; the plaintext is zeroed before it returns.  The
 * argument of clerk_try(), for a caller that goes on when it fails.
 */
typedef struct ResealArgs
{
	const ClerkSealedRow *from;
	const ClerkSealedRow *to;
	bytea	   *sealed;
	int32		key_id;
	bytea	   *result;			/* out: the value sealed as `to` */
	int32		new_key_id;		/* out */
} ResealArgs;

static void
reseal_value(void *varg)
{
	ResealArgs *r = (ResealArgs *) varg;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "clerk_sync re-seal",
											  ALLOCSET_DEFAULT_SIZES);
	size_t		len;
	unsigned char *plain = clerk_open_sealed(r->from, r->sealed, r->key_id, 0, cxt, &len);

	r->result = clerk_seal(r->to, plain, len, &r->new_key_id);
	MemoryContextDelete(cxt);	/* zeroes the plaintext */
}

/*
 * Deactivate the organization's active credentials for the service.
 * Returns the id of the row deactivated, or 0 when none was active.
 *
 * The value is sealed again as deactivated, so that setting is_active back
 * on the row does not make it readable again.  A value that does not open
 * (altered, or under a key no longer in the ring) is left as it is: it
 * cannot be read as active either, and new credentials must not depend on
 * it.
 */
static int64
deactivate_active(const char *organization_id, const char *service_name)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum		values[3];
	bool		isnull;
	ErrorData  *edata;
	ClerkSealedRow active = {CLERK_SEAL_CREDENTIALS, organization_id, service_name, 0, false, false};
	ClerkSealedRow inactive;
	ResealArgs	r = {.from = &active, .to = &inactive};

	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service_name);
	clerk_vault_exec("SELECT id, key_id, credentials_encrypted FROM clerk.api_credentials"
					 " WHERE organization_id = $1 AND service_name = $2 AND is_active FOR UPDATE",
					 2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	active.id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	r.key_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	r.sealed = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	inactive = active;
	inactive.inactive = true;

	edata = clerk_try(reseal_value, &r);
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("clerk_sync: credentials row " INT64_FORMAT " deactivated without re-sealing: %s",
						active.id, edata->message)));
		FreeErrorData(edata);
		r.result = r.sealed;
		r.new_key_id = r.key_id;
	}
	values[0] = Int64GetDatum(active.id);
	values[1] = PointerGetDatum(r.result);
	values[2] = Int32GetDatum(r.new_key_id);
	types[0] = INT8OID;
	types[1] = BYTEAOID;
	clerk_vault_exec("UPDATE clerk.api_credentials"
					 " SET is_active = false, credentials_encrypted = $2, key_id = $3, updated_at = pg_catalog.now()"
					 " WHERE id = $1",
					 3, types, values, SPI_OK_UPDATE);
	return active.id;
}

/*
 * Audit an action on the credentials row id.  The details name the
 * service, and the key id (key_id > 0) and the row replaced (replaced > 0)
 * where the action has them; never a secret.
 */
static void
audit_credentials(const char *actor, const char *action, int64 id,
				  const char *organization_id, const char *service_name,
				  int32 key_id, int64 replaced)
{
	StringInfoData details;

	initStringInfo(&details);
	appendStringInfoString(&details, "{\"service\": ");
	escape_json(&details, service_name);
	if (key_id > 0)
		appendStringInfo(&details, ", \"key_id\": %d", key_id);
	if (replaced > 0)
		appendStringInfo(&details, ", \"replaced_id\": " INT64_FORMAT, replaced);
	appendStringInfoChar(&details, '}');
	clerk_audit(actor, action, "api_credentials", psprintf(INT64_FORMAT, id),
				organization_id, -1, details.data);
}


/*
 * A read in the server log, as it happens: the audit row goes with the
 * reader's transaction, this line stays even if the reader rolls back.
 * Never sent to the client; names quoted as JSON strings, so that no
 * name can forge a line of its own.
 */
static void
log_read(const char *actor, int64 id, const char *organization_id,
		 const char *service_name)
{
	StringInfoData who;

	initStringInfo(&who);
	appendStringInfoString(&who, "role ");
	escape_json(&who, actor);
	appendStringInfoString(&who, ", organization ");
	escape_json(&who, organization_id);
	appendStringInfoString(&who, ", service ");
	escape_json(&who, service_name);
	ereport(LOG_SERVER_ONLY,
			(errmsg("clerk_sync: credentials.read: %s, credential id " INT64_FORMAT,
					who.data, id),
			 errhidestmt(true)));
	pfree(who.data);
}


/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/*
 * clerk_store_credentials(organization_id text, service_name text,
 *						   credentials jsonb) RETURNS bigint
 *
 * Validate, seal and store; the organization's active credentials for the
 * service, if any, are deactivated, not overwritten.  Returns the new id.
 */
Datum
clerk_store_credentials(PG_FUNCTION_ARGS)
{
	char	   *organization_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const Service *service = find_service(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	Jsonb	   *input = PG_GETARG_JSONB_P(2);
	char	   *actor = clerk_vault_actor();
	ClerkSealedRow row = {CLERK_SEAL_CREDENTIALS, organization_id, service->name, 0, false, false};
	Jsonb	   *credentials;
	bytea	   *sealed;
	int32		key_id;
	int64		replaced;
	int64		id;
	bool		isnull;
	ClerkVaultSpi spi;
	Oid			types[6] = {TEXTOID, TEXTOID, BYTEAOID, INT4OID, TEXTOID, INT8OID};
	Datum		values[6];

	credentials = check_credentials(service, input);
	clerk_keyring_require();

	clerk_vault_begin(&spi);
	check_organization(organization_id);

	/* the row's id first: the sealed value is bound to it */
	clerk_vault_exec("SELECT nextval('clerk.api_credentials_id_seq')", 0, NULL, NULL, SPI_OK_SELECT);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	row.id = id;
	sealed = clerk_seal(&row, (unsigned char *) VARDATA(credentials),
						VARSIZE(credentials) - VARHDRSZ, &key_id);
	sodium_memzero(credentials, VARSIZE(credentials));
	if ((Pointer) input != DatumGetPointer(PG_GETARG_DATUM(2)))
		sodium_memzero(input, VARSIZE(input));

	replaced = deactivate_active(organization_id, service->name);

	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service->name);
	values[2] = PointerGetDatum(sealed);
	values[3] = Int32GetDatum(key_id);
	values[4] = CStringGetTextDatum(actor);
	values[5] = Int64GetDatum(id);
	clerk_vault_exec("INSERT INTO clerk.api_credentials"
					 " (organization_id, service_name, credentials_encrypted, key_id, created_by, id)"
					 " VALUES ($1, $2, $3, $4, $5, $6)",
					 6, types, values, SPI_OK_INSERT);

	audit_credentials(actor, "credentials.store", id, organization_id,
					  service->name, key_id, replaced);

	clerk_vault_end(&spi);
	PG_RETURN_INT64(id);
}

/*
 * clerk_get_credentials(organization_id text, service_name text)
 *		RETURNS jsonb
 *
 * The active credentials, decrypted, or NULL when there are none.  Each
 * successful read is audited.
 */
Datum
clerk_get_credentials(PG_FUNCTION_ARGS)
{
	char	   *organization_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const Service *service = find_service(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	char	   *actor = clerk_vault_actor();
	Jsonb	   *result = NULL;
	ClerkVaultSpi spi;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	clerk_keyring_require();

	clerk_vault_begin(&spi);
	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service->name);
	clerk_vault_exec("SELECT id, key_id, credentials_encrypted FROM clerk.api_credentials"
					 " WHERE organization_id = $1 AND service_name = $2 AND is_active",
					 2, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 3, &isnull));
		ClerkSealedRow row = {CLERK_SEAL_CREDENTIALS, organization_id, service->name, id, false, false};
		unsigned char *buf;
		size_t		len;

		/* the plaintext is the result: put it where the caller's data lives */
		buf = clerk_open_sealed(&row, sealed, key_id, VARHDRSZ, spi.caller_cxt,
								&len);
		SET_VARSIZE(buf, VARHDRSZ + len);
		result = (Jsonb *) buf;

		audit_credentials(actor, "credentials.read", id, organization_id,
						  service->name, key_id, 0);
		log_read(actor, id, organization_id, service->name);
	}
	clerk_vault_end(&spi);

	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(result);
}

/*
 * clerk_deactivate_credentials(organization_id text, service_name text)
 *		RETURNS boolean
 *
 * true if active credentials were deactivated, false if there were none.
 */
Datum
clerk_deactivate_credentials(PG_FUNCTION_ARGS)
{
	char	   *organization_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const Service *service = find_service(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	char	   *actor = clerk_vault_actor();
	int64		id;
	ClerkVaultSpi spi;

	clerk_vault_begin(&spi);
	id = deactivate_active(organization_id, service->name);
	if (id > 0)
		audit_credentials(actor, "credentials.deactivate", id, organization_id,
						  service->name, 0, 0);
	clerk_vault_end(&spi);

	PG_RETURN_BOOL(id > 0);
}

/*
 * Re-seal under key newest_id every value of the table that is sealed
 * under another key, marking in from[] (by ring entry) the keys they were
 * under.  Returns how many values were re-sealed.
 */
static int64
reseal_table(const SealedTable *table, int32 newest_id, bool *from)
{
	Oid			selecttypes[1] = {INT4OID};
	Oid			types[3] = {BYTEAOID, INT4OID, table->row_key_type};
	Datum		values[3];
	MemoryContext rowcxt;
	SPITupleTable *rows;
	uint64		nrows;

	values[0] = Int32GetDatum(newest_id);
	clerk_vault_exec(table->select_sql, 1, selecttypes, values, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "clerk_sync rotation",
								   ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tuple = rows->vals[i];
		TupleDesc	tupdesc = rows->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(rowcxt);
		bool		isnull;
		ClerkSealedRow row;
		ResealArgs	r = {.from = &row, .to = &row};

		r.key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 4, &isnull));
		r.sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 5, &isnull));
		row.purpose = table->purpose;
		row.scope = SPI_getvalue(tuple, tupdesc, 2);
		row.name = SPI_getvalue(tuple, tupdesc, 3);
		row.id = table->purpose == CLERK_SEAL_CREDENTIALS ?
			DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull)) : 0;
		row.inactive = DatumGetBool(SPI_getbinval(tuple, tupdesc, 6, &isnull));
		row.legacy = true;		/* 1.0's values are re-sealed here */
		reseal_value(&r);
		from[clerk_keyring_index(r.key_id)] = true;

		values[0] = PointerGetDatum(r.result);
		values[1] = Int32GetDatum(r.new_key_id);
		values[2] = SPI_getbinval(tuple, tupdesc, 1, &isnull);
		clerk_vault_exec(table->update_sql, 3, types, values, SPI_OK_UPDATE);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(rowcxt);
	}
	MemoryContextDelete(rowcxt);

	return (int64) nrows;
}

/*
 * clerk_rotate_encryption_key() RETURNS bigint
 *
 * Re-encrypt every stored value (credentials active or not, and the stored
 * secrets) that is not under the newest key id, in the caller's
 * transaction: all of it or, on any error, none of it.  Returns how many
 * values were re-encrypted.
 */
Datum
clerk_rotate_encryption_key(PG_FUNCTION_ARGS)
{
	char	   *actor = clerk_vault_actor();
	bool		from[CLERK_KEYRING_MAX_KEYS] = {false};
	int64		ncredentials;
	int64		nsecrets;
	int32		newest_id;
	ClerkVaultSpi spi;
	StringInfoData details;
	bool		first = true;

	clerk_keyring_require();
	newest_id = clerk_keyring_id(clerk_keyring_newest());

	clerk_vault_begin(&spi);
	ncredentials = reseal_table(&sealed_credentials, newest_id, from);
	nsecrets = reseal_table(&sealed_secrets, newest_id, from);

	initStringInfo(&details);
	appendStringInfo(&details,
					 "{\"key_id\": %d, \"credentials\": " INT64_FORMAT
					 ", \"secrets\": " INT64_FORMAT ", \"from_key_ids\": [",
					 newest_id, ncredentials, nsecrets);
	for (int i = 0; i < clerk_keyring_size(); i++)
	{
		if (!from[i])
			continue;
		appendStringInfo(&details, "%s%d", first ? "" : ", ", clerk_keyring_id(i));
		first = false;
	}
	appendStringInfoString(&details, "]}");
	clerk_audit(actor, "encryption_key.rotate", "encryption_key",
				psprintf("%d", newest_id), NULL, -1, details.data);

	clerk_vault_end(&spi);

	PG_RETURN_INT64(ncredentials + nsecrets);
}
