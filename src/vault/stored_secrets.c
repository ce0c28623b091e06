/*
 * stored_secrets.c
 *		The Clerk secret key and the webhook signing secret, stored encrypted
 *		in clerk.secrets.
 *
 * clerk_set_secret_key() and clerk_set_webhook_secret() (webhook.c) store
 * them, sealed for the row of their name; clerk_resolve_secret()
 * (secrets.c) prefers a stored secret to its file and to the environment.
 * Nothing returns a stored secret to SQL.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "base/base.h"
#include "base/compat.h"
#include "store/store.h"
#include "vault/keyring.h"
#include "vault/seal.h"
#include "vault/secret_text.h"
#include "vault/stored_secrets.h"
#include "vault/vault_spi.h"

PG_FUNCTION_INFO_V1(clerk_set_secret_key);

/* Each secret's row in clerk.secrets, and the actions that audit it */
typedef struct StoredSecret
{
	const char *name;
	const char *set_action;
	const char *clear_action;
} StoredSecret;

static const StoredSecret stored_secrets[CLERK_NSECRETS] = {
	[CLERK_SECRET_API_KEY] = {CLERK_SECRET_KEY_ROW, "secret_key.set", "secret_key.clear"},
	[CLERK_SECRET_WEBHOOK] = {"webhook_secret", "webhook_secret.set", "webhook_secret.clear"},
};

void
clerk_store_secret(ClerkSecret which, const char *value, size_t len)
{
	const StoredSecret *s = &stored_secrets[which];
	char	   *actor = clerk_vault_actor();
	ClerkVaultSpi spi;
	Oid			types[4] = {TEXTOID, BYTEAOID, INT4OID, TEXTOID};
	Datum		values[4];

	if (len > 0)
	{
		if (len >= CLERK_MAX_KEY_LEN || clerk_has_blank_or_control(value, len))
		{
			if (which == CLERK_SECRET_API_KEY)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid Clerk secret key"),
						 errdetail("A Clerk secret key is shorter than %d bytes and has no spaces or control characters.",
								   CLERK_MAX_KEY_LEN)));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid secret"),
					 errdetail("A secret is shorter than %d bytes and has no spaces or control characters.",
							   CLERK_MAX_KEY_LEN)));
		}
		clerk_keyring_require();
	}

	clerk_vault_begin(&spi);
	values[0] = CStringGetTextDatum(s->name);
	if (len == 0)
	{
		clerk_vault_exec("DELETE FROM clerk.secrets WHERE name = $1",
						 1, types, values, SPI_OK_DELETE);
		if (SPI_processed > 0)
			clerk_audit(actor, s->clear_action, "secret", s->name, NULL, -1, "{}");
	}
	else
	{
		ClerkSealedRow row = {CLERK_SEAL_SECRET, "", s->name, 0, false, false};
		int32		key_id;

		values[1] = PointerGetDatum(clerk_seal(&row, (const unsigned char *) value,
											   len, &key_id));
		values[2] = Int32GetDatum(key_id);
		values[3] = CStringGetTextDatum(actor);
		clerk_vault_exec("INSERT INTO clerk.secrets (name, value_encrypted, key_id, set_by)"
						 " VALUES ($1, $2, $3, $4)"
						 " ON CONFLICT (name) DO UPDATE"
						 " SET value_encrypted = excluded.value_encrypted,"
						 " key_id = excluded.key_id, set_by = excluded.set_by,"
						 " updated_at = pg_catalog.now()",
						 4, types, values, SPI_OK_INSERT);

		clerk_audit(actor, s->set_action, "secret", s->name, NULL, -1,
					psprintf("{\"key_id\": %d}", key_id));
	}
	clerk_vault_end(&spi);
}

char *
clerk_stored_secret(ClerkSecret which)
{
	const StoredSecret *s = &stored_secrets[which];
	char	   *result = NULL;
	ClerkVaultSpi spi;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	/* a database without the extension has nothing stored */
	if (!OidIsValid(get_extension_oid("clerk_sync", true)))
		return NULL;

	clerk_vault_begin(&spi);
	values[0] = CStringGetTextDatum(s->name);
	clerk_vault_exec("SELECT key_id, value_encrypted FROM clerk.secrets WHERE name = $1",
					 1, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		ClerkSealedRow row = {CLERK_SEAL_SECRET, "", s->name, 0, false, false};
		size_t		len;

		if (clerk_keyring_size() == 0)
			ereport(ERROR,
					(errcode(CLERK_ERRCODE_NO_KEY),
					 errmsg("a secret (%s) is stored but no credentials encryption key is loaded",
							s->name),
					 errdetail("clerk_set_secret_key() stored the key encrypted, and it cannot be read without the encryption key."),
					 errhint("Start the server with the encryption key it was stored under, or remove the stored key with clerk_set_secret_key('').")));

		result = (char *) clerk_open_sealed(&row, sealed, key_id, 0,
											spi.caller_cxt, &len);
	}
	clerk_vault_end(&spi);

	return result;
}

/*
 * clerk_set_secret_key(key text) RETURNS void
 *
 * Store the Clerk secret key encrypted; the sync then prefers it to the
 * file clerk_sync.secret_key_file names and to CLERK_SECRET_KEY.  An empty
 * string removes the stored key.
 */
Datum
clerk_set_secret_key(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);

	PG_TRY();
	{
		clerk_store_secret(CLERK_SECRET_API_KEY, VARDATA_ANY(key),
						   VARSIZE_ANY_EXHDR(key));
	}
	PG_FINALLY();
	{
		/* the detoasted copy, on every path */
		if ((Pointer) key != DatumGetPointer(PG_GETARG_DATUM(0)))
			sodium_memzero(key, VARSIZE_ANY(key));
	}
	PG_END_TRY();
	PG_RETURN_VOID();
}
