/*
 * vault.c
 *		libsodium: the root key ring, per-purpose subkeys, and authenticated
 *		encryption of third-party API credentials and of the Clerk secret
 *		key.
 *
 * Keys.  A ring of up to VAULT_MAX_KEYS root keys of 32 bytes is read once,
 * in the postmaster while shared_preload_libraries is processed, from the
 * output of clerk_sync.encryption_key_command or else from the server's
 * CREDENTIALS_ENCRYPTION_KEY environment variable.  It is kept in
 * sodium_malloc'd memory that stays inaccessible except while a subkey is
 * derived, and backends inherit it through fork().  Each ring entry is
 * "id:key"; a ring of a single key may be just "key", which is key id 1.
 * Ids are explicit so that retiring an old key never renumbers the others.
 * New values are sealed under the highest key id; values under older ids
 * stay readable as long as their key is in the ring, and
 * clerk_rotate_encryption_key() re-seals them under the newest.
 *
 * Subkeys.  crypto_kdf_derive_from_key() derives one subkey per purpose
 * (API credentials, stored secrets) from a root key, so a value sealed for
 * one purpose never opens as another.
 *
 * Format 1 of a sealed value, stored as bytea:
 *
 *		1 byte		format version (1)
 *		4 bytes		key id, big-endian
 *		24 bytes	random nonce
 *		n + 16		XChaCha20-Poly1305-IETF ciphertext and tag
 *
 * The associated data binds the value to its row: format version, key id,
 * purpose, then the organization id and service name (or, for a stored
 * secret, its name).  A value altered by one byte, or copied onto another
 * organization's or service's row, fails to open with an error.
 *
 * Credentials are sealed in jsonb's binary form, so opening them yields the
 * function result itself and no parser copies of the secrets are made.
 * Every opened plaintext lives in a memory context of its own and is zeroed
 * when that context is reset or deleted.
 *
 * The SQL functions run their queries as the extension's owner, with
 * search_path pinned, after recording the calling role for the audit log.
 */
#include "postgres.h"

#include <sodium.h>

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "clerk_sync.h"
#include "role.h"
#include "store.h"
#include "secrets.h"
#include "vault.h"

PG_FUNCTION_INFO_V1(clerk_store_credentials);
PG_FUNCTION_INFO_V1(clerk_get_credentials);
PG_FUNCTION_INFO_V1(clerk_deactivate_credentials);
PG_FUNCTION_INFO_V1(clerk_rotate_encryption_key);
PG_FUNCTION_INFO_V1(clerk_set_secret_key);

#define VAULT_FORMAT_VERSION	1
#define VAULT_NONCE_BYTES		crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define VAULT_TAG_BYTES			crypto_aead_xchacha20poly1305_ietf_ABYTES
#define VAULT_KEY_BYTES			crypto_aead_xchacha20poly1305_ietf_KEYBYTES
/* version byte and key id: the part of the header bound as associated data */
#define VAULT_PREFIX_BYTES		5
#define VAULT_HEADER_BYTES		(VAULT_PREFIX_BYTES + VAULT_NONCE_BYTES)

StaticAssertDecl(crypto_kdf_KEYBYTES == VAULT_KEY_BYTES,
				 "root keys and AEAD keys must have the same size");

/* crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) characters */
#define VAULT_KDF_CONTEXT		"clerkvlt"

/* subkey ids, one per purpose */
#define VAULT_PURPOSE_CREDENTIALS	1
#define VAULT_PURPOSE_SECRET		2

#define VAULT_MAX_KEYS			64
#define VAULT_MAX_RING_TEXT		8192

/*
 * Largest plaintext sealed or opened.  It must stay well below the memory
 * allocator's chunk limit (8kB) so that an opened plaintext is never a
 * block of its own, which pfree() would hand back to malloc before the
 * context's callback zeroes it.
 */
#define VAULT_MAX_PLAINTEXT		4096
#define VAULT_MAX_FIELD_LEN		1024

#define VAULT_ENV_KEY			"CREDENTIALS_ENCRYPTION_KEY"
#define VAULT_CLERK_SECRET		"clerk_secret_key"

/* clerk_sync.encryption_key_command */
static char *clerk_sync_encryption_key_command = NULL;

/*
 * The key ring.  Ids and count are ordinary memory; the key bytes are in
 * vault_key_bytes (entry i at offset i * VAULT_KEY_BYTES), sodium_malloc'd
 * and kept PROT_NONE except inside vault_subkey().
 */
static int	vault_nkeys = 0;
static int32 vault_key_ids[VAULT_MAX_KEYS];
static int	vault_current = -1;		/* entry with the highest id */
static unsigned char *vault_key_bytes = NULL;

/*
 * What each service's credentials hold.  A field without a default is
 * required; no other field is accepted.
 */
typedef enum VaultFieldKind
{
	FIELD_SECRET,				/* non-empty token: no spaces or controls */
	FIELD_SHARD,				/* a Cliniko shard */
	FIELD_ACCOUNT_ID,			/* positive integer, as number or digits */
	FIELD_URL					/* http(s) URL without user information */
} VaultFieldKind;

typedef struct VaultField
{
	const char *name;
	VaultFieldKind kind;
	const char *default_value;
} VaultField;

#define VAULT_MAX_FIELDS 3

typedef struct VaultService
{
	const char *name;
	const char *field_list;		/* for messages */
	int			nfields;
	VaultField	fields[VAULT_MAX_FIELDS];
} VaultService;

static const VaultService vault_services[] = {
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

/* Zeroes an opened plaintext when its memory context goes away. */
typedef struct VaultWipe
{
	MemoryContextCallback cb;
	unsigned char *buf;
	size_t		len;
} VaultWipe;

/* State kept while running queries as the extension's owner. */
typedef struct VaultSpi
{
	ClerkSavedUser saved;
	MemoryContext caller_cxt;
} VaultSpi;


/* ---------------------------------------------------------------------
 * The key ring
 * ---------------------------------------------------------------------
 */

/*
 * Decode one root key: 64 hexadecimal digits, or standard or URL-safe
 * base64, padded or not, of exactly 32 bytes (a Fernet key is URL-safe
 * base64 of 32 bytes, so one works as is).
 */
static bool
vault_decode_key(const char *s, size_t len, unsigned char *out)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL,
		sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING
	};
	size_t		binlen;
	const char *end;

	if (len == 2 * VAULT_KEY_BYTES)
		return sodium_hex2bin(out, VAULT_KEY_BYTES, s, len, NULL,
							  &binlen, &end) == 0 &&
			binlen == VAULT_KEY_BYTES && end == s + len;

	for (int i = 0; i < (int) lengthof(variants); i++)
	{
		if (sodium_base642bin(out, VAULT_KEY_BYTES, s, len, NULL,
							  &binlen, &end, variants[i]) == 0 &&
			binlen == VAULT_KEY_BYTES && end == s + len)
			return true;
	}
	return false;
}

/*
 * Parse a key ring: entries separated by newlines, commas or blanks, each
 * "id:key", or a single "key" standing alone as key id 1.  Any defect stops
 * the server: running without the intended key would only fail later, one
 * credential at a time.  Nothing of the text itself is ever reported.
 */
static void
vault_parse_ring(char *text, const char *source)
{
	const char *separators = " \t\r\n,";
	char	   *p = text;
	int			entry = 0;

	for (;;)
	{
		char	   *token;
		size_t		len;
		char	   *colon;
		const char *key;
		size_t		keylen;
		int64		id;

		p += strspn(p, separators);
		if (*p == '\0')
			break;
		token = p;
		len = strcspn(p, separators);
		p += len;
		entry++;

		if (vault_nkeys >= VAULT_MAX_KEYS)
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid credentials encryption key ring in %s", source),
					 errdetail("The ring holds more than %d keys.", VAULT_MAX_KEYS)));

		colon = memchr(token, ':', len);
		if (colon != NULL)
		{
			size_t		idlen = colon - token;

			id = 0;
			for (size_t i = 0; i < idlen && id <= PG_INT32_MAX; i++)
			{
				if (token[i] < '0' || token[i] > '9')
				{
					id = -1;
					break;
				}
				id = id * 10 + (token[i] - '0');
			}
			if (idlen == 0 || id < 1 || id > PG_INT32_MAX)
				ereport(FATAL,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid credentials encryption key ring in %s", source),
						 errdetail("Entry %d has an invalid key id; an id is an integer from 1 to %d.",
								   entry, PG_INT32_MAX)));
			key = colon + 1;
			keylen = len - idlen - 1;
		}
		else
		{
			/* only a ring of one key may leave out the id */
			if (entry > 1 || p[strspn(p, separators)] != '\0')
				ereport(FATAL,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid credentials encryption key ring in %s", source),
						 errdetail("Entry %d has no key id, and a ring of several keys needs one on every entry.",
								   entry),
						 errhint("Write each entry as id:key, such as 1:<old key> and 2:<new key>.")));
			id = 1;
			key = token;
			keylen = len;
		}

		for (int i = 0; i < vault_nkeys; i++)
		{
			if (vault_key_ids[i] == id)
				ereport(FATAL,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid credentials encryption key ring in %s", source),
						 errdetail("Key id %d appears more than once.", (int) id)));
		}

		if (!vault_decode_key(key, keylen,
							  vault_key_bytes + vault_nkeys * VAULT_KEY_BYTES))
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid credentials encryption key in %s", source),
					 errdetail("Entry %d is neither 64 hexadecimal digits nor the standard or URL-safe base64 encoding of 32 bytes.",
							   entry),
					 errhint("Generate a key with \"openssl rand -hex 32\".")));
		if (sodium_is_zero(vault_key_bytes + vault_nkeys * VAULT_KEY_BYTES,
						   VAULT_KEY_BYTES))
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid credentials encryption key in %s", source),
					 errdetail("Entry %d is all zero bytes.", entry),
					 errhint("Generate a key with \"openssl rand -hex 32\".")));

		vault_key_ids[vault_nkeys] = (int32) id;
		if (vault_current < 0 || id > vault_key_ids[vault_current])
			vault_current = vault_nkeys;
		vault_nkeys++;
	}

	if (vault_nkeys == 0)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid credentials encryption key in %s", source),
				 errdetail("No key entry was found in it.")));
}

/*
 * Run clerk_sync.encryption_key_command and return its output in a
 * sodium_malloc'd, NUL-terminated buffer.  The command itself is never
 * logged, since it may carry a key.
 */
static char *
vault_run_key_command(const char *command)
{
	char	   *buf;
	size_t		len = 0;
	FILE	   *fh;
	int			rc;

	buf = sodium_malloc(VAULT_MAX_RING_TEXT + 1);
	if (buf == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	fh = OpenPipeStream(command, "r");
	if (fh == NULL)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not run clerk_sync.encryption_key_command: %m")));

	while (len <= VAULT_MAX_RING_TEXT)
	{
		size_t		n = fread(buf + len, 1, VAULT_MAX_RING_TEXT + 1 - len, fh);

		if (n == 0)
			break;
		len += n;
	}
	if (ferror(fh))
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not read the output of clerk_sync.encryption_key_command: %m")));

	rc = ClosePipeStream(fh);
	if (rc != 0)
		ereport(FATAL,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("clerk_sync.encryption_key_command failed"),
				 errdetail("The command's %s.", wait_result_to_str(rc))));
	if (len > VAULT_MAX_RING_TEXT)
		ereport(FATAL,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("clerk_sync.encryption_key_command printed more than %d bytes",
						VAULT_MAX_RING_TEXT)));
	buf[len] = '\0';
	if (strlen(buf) != len)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid credentials encryption key in the output of clerk_sync.encryption_key_command"),
				 errdetail("The output contains a NUL byte.")));
	return buf;
}

/*
 * Load the key ring in the postmaster: from the command if one is set,
 * else from the environment.  Without either, the server starts and the
 * credential functions report that no key is loaded.
 */
static void
vault_load_key_ring(void)
{
	char	   *text = NULL;
	const char *source;

	vault_key_bytes = sodium_malloc(VAULT_MAX_KEYS * VAULT_KEY_BYTES);
	if (vault_key_bytes == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	if (clerk_sync_encryption_key_command != NULL &&
		clerk_sync_encryption_key_command[0] != '\0')
	{
		source = "the output of clerk_sync.encryption_key_command";
		text = vault_run_key_command(clerk_sync_encryption_key_command);
	}
	else
	{
		/*
		 * Out of the environment of this and every process started from
		 * now on (backends, archive_command, COPY ... PROGRAM), its bytes
		 * overwritten where they were.  With EXEC_BACKEND, each backend
		 * reloads the ring and still needs it.
		 */
#ifndef EXEC_BACKEND
		char	   *env = clerk_take_env(VAULT_ENV_KEY);
#else
		char	   *env = getenv(VAULT_ENV_KEY);
#endif
		size_t		len;

		source = "the " VAULT_ENV_KEY " environment variable";
		if (env == NULL || env[0] == '\0')
		{
			sodium_free(vault_key_bytes);
			vault_key_bytes = NULL;
			ereport(LOG,
					(errmsg("clerk_sync: no credentials encryption key is configured"),
					 errdetail("Neither clerk_sync.encryption_key_command nor " VAULT_ENV_KEY " is set; storing and reading credentials will fail.")));
			return;
		}
		len = strlen(env);
		if (len > VAULT_MAX_RING_TEXT)
			ereport(FATAL,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("%s is longer than %d bytes", VAULT_ENV_KEY,
							VAULT_MAX_RING_TEXT)));
		text = sodium_malloc(len + 1);
		if (text == NULL)
			ereport(FATAL,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		memcpy(text, env, len + 1);
#ifndef EXEC_BACKEND
		sodium_free(env);
#endif
	}

	vault_parse_ring(text, source);
	sodium_free(text);			/* zeroes it */

	if (sodium_mprotect_noaccess(vault_key_bytes) != 0)
		ereport(FATAL,
				(errmsg("could not protect the credentials encryption keys: %m")));

	ereport(LOG,
			(errmsg_plural("clerk_sync: loaded %d credentials encryption key from %s; new values use key id %d",
						   "clerk_sync: loaded %d credentials encryption keys from %s; new values use key id %d",
						   vault_nkeys,
						   vault_nkeys, source, vault_key_ids[vault_current])));
}

/* Error out, saying why and what to do, unless a key ring is loaded. */
static void
vault_require_key(void)
{
	if (vault_nkeys > 0)
		return;
	if (!clerk_sync_preloaded)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg("no credentials encryption key is loaded"),
				 errdetail("clerk_sync reads its encryption key only when it is loaded through shared_preload_libraries at server start."),
				 errhint("Add clerk_sync to shared_preload_libraries, set " VAULT_ENV_KEY " in the server's environment or clerk_sync.encryption_key_command, and restart the server.")));
	ereport(ERROR,
			(errcode(CLERK_ERRCODE_NO_KEY),
			 errmsg("no credentials encryption key is loaded"),
			 errdetail("Neither clerk_sync.encryption_key_command nor the " VAULT_ENV_KEY " environment variable was set when the server started."),
			 errhint("Set one of them to a 32-byte key, such as the output of \"openssl rand -hex 32\", and restart the server.")));
}

/* Index of key_id in the ring, or -1. */
static int
vault_key_index(int32 key_id)
{
	for (int i = 0; i < vault_nkeys; i++)
	{
		if (vault_key_ids[i] == key_id)
			return i;
	}
	return -1;
}

/* Derive the subkey for purpose from ring entry idx. */
static void
vault_subkey(int idx, uint64 purpose, unsigned char *subkey)
{
	if (sodium_mprotect_readonly(vault_key_bytes) != 0)
		elog(ERROR, "could not unprotect the credentials encryption keys: %m");
	crypto_kdf_derive_from_key(subkey, VAULT_KEY_BYTES, purpose,
							   VAULT_KDF_CONTEXT,
							   vault_key_bytes + idx * VAULT_KEY_BYTES);
	if (sodium_mprotect_noaccess(vault_key_bytes) != 0)
		elog(ERROR, "could not protect the credentials encryption keys: %m");
}


/* ---------------------------------------------------------------------
 * Sealing and opening
 * ---------------------------------------------------------------------
 */

static void
vault_append_uint32(StringInfo buf, uint32 v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};

	appendBinaryStringInfo(buf, (char *) b, 4);
}

/*
 * The associated data: a domain tag, the header's version and key id, the
 * purpose, and the row (scope and name, each length-prefixed so that no
 * two rows share an encoding).
 */
static void
vault_associated_data(StringInfo ad, const unsigned char *prefix,
					  uint8 purpose, const char *scope, const char *name)
{
	initStringInfo(ad);
	appendBinaryStringInfo(ad, "clerk_sync vault", 16);
	appendBinaryStringInfo(ad, (const char *) prefix, VAULT_PREFIX_BYTES);
	appendStringInfoChar(ad, (char) purpose);
	vault_append_uint32(ad, strlen(scope));
	appendStringInfoString(ad, scope);
	vault_append_uint32(ad, strlen(name));
	appendStringInfoString(ad, name);
}

/*
 * Seal plaintext for a purpose and a row (scope, name) under the newest
 * key.  Returns the value to store; *key_id is the id it used.
 */
static bytea *
vault_seal(uint8 purpose, const char *scope, const char *name,
		   const unsigned char *plain, size_t plen, int32 *key_id)
{
	unsigned char subkey[VAULT_KEY_BYTES];
	StringInfoData ad;
	unsigned long long clen;
	unsigned char *out;
	bytea	   *result;
	int32		id;

	vault_require_key();
	if (plen > VAULT_MAX_PLAINTEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value to encrypt is too large"),
				 errdetail("It may be at most %d bytes.", VAULT_MAX_PLAINTEXT)));

	id = vault_key_ids[vault_current];
	result = (bytea *) palloc(VARHDRSZ + VAULT_HEADER_BYTES + plen + VAULT_TAG_BYTES);
	SET_VARSIZE(result, VARHDRSZ + VAULT_HEADER_BYTES + plen + VAULT_TAG_BYTES);
	out = (unsigned char *) VARDATA(result);
	out[0] = VAULT_FORMAT_VERSION;
	out[1] = (uint32) id >> 24;
	out[2] = (uint32) id >> 16;
	out[3] = (uint32) id >> 8;
	out[4] = (uint32) id;
	randombytes_buf(out + VAULT_PREFIX_BYTES, VAULT_NONCE_BYTES);

	vault_associated_data(&ad, out, purpose, scope, name);
	vault_subkey(vault_current, purpose, subkey);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + VAULT_HEADER_BYTES, &clen,
											   plain, plen,
											   (unsigned char *) ad.data, ad.len,
											   NULL, out + VAULT_PREFIX_BYTES,
											   subkey);
	sodium_memzero(subkey, sizeof(subkey));
	pfree(ad.data);
	Assert(clen == plen + VAULT_TAG_BYTES);

	*key_id = id;
	return result;
}

static void
vault_wipe(void *arg)
{
	VaultWipe  *wipe = (VaultWipe *) arg;

	sodium_memzero(wipe->buf, wipe->len);
}

/*
 * Open a value sealed by vault_seal() for the same purpose and row;
 * row_key_id is the key id recorded next to it, and what names the value
 * in error messages.  Returns the plaintext after prefix spare bytes (room
 * for a varlena header) and followed by a NUL.  It lives in a new child of
 * CurrentMemoryContext and is zeroed when that context is reset or deleted.
 */
static unsigned char *
vault_open(uint8 purpose, const char *scope, const char *name,
		   bytea *sealed, int32 row_key_id, size_t prefix,
		   size_t *plen, const char *what)
{
	const unsigned char *in = (const unsigned char *) VARDATA_ANY(sealed);
	size_t		inlen = VARSIZE_ANY_EXHDR(sealed);
	unsigned char subkey[VAULT_KEY_BYTES];
	StringInfoData ad;
	unsigned long long mlen;
	MemoryContext cxt;
	VaultWipe  *wipe;
	unsigned char *buf;
	int32		key_id;
	int			idx;
	int			rc;

	vault_require_key();

	if (inlen < VAULT_HEADER_BYTES + VAULT_TAG_BYTES ||
		inlen > VAULT_HEADER_BYTES + VAULT_TAG_BYTES + VAULT_MAX_PLAINTEXT ||
		in[0] != VAULT_FORMAT_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt %s", what),
				 errdetail("The stored value is not in a format this version of clerk_sync reads.")));

	key_id = (int32) (((uint32) in[1] << 24) | ((uint32) in[2] << 16) |
					  ((uint32) in[3] << 8) | (uint32) in[4]);
	if (key_id != row_key_id)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt %s", what),
				 errdetail("The row records key id %d, but the value was encrypted with key id %d.",
						   row_key_id, key_id)));
	idx = vault_key_index(key_id);
	if (idx < 0)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg("could not decrypt %s", what),
				 errdetail("It was encrypted with key id %d, which is not in the loaded key ring.",
						   key_id),
				 errhint("Add key %d back to the key ring and restart the server. Retire a key only after clerk_rotate_encryption_key() has re-encrypted everything under a newer one.",
						 key_id)));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "clerk_sync plaintext",
								ALLOCSET_DEFAULT_SIZES);
	mlen = inlen - VAULT_HEADER_BYTES - VAULT_TAG_BYTES;
	buf = MemoryContextAllocZero(cxt, prefix + mlen + 1);
	wipe = MemoryContextAlloc(cxt, sizeof(VaultWipe));
	wipe->buf = buf;
	wipe->len = prefix + mlen + 1;
	wipe->cb.func = vault_wipe;
	wipe->cb.arg = wipe;
	MemoryContextRegisterResetCallback(cxt, &wipe->cb);

	vault_associated_data(&ad, in, purpose, scope, name);
	vault_subkey(idx, purpose, subkey);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(buf + prefix, &mlen, NULL,
													in + VAULT_HEADER_BYTES,
													inlen - VAULT_HEADER_BYTES,
													(unsigned char *) ad.data, ad.len,
													in + VAULT_PREFIX_BYTES,
													subkey);
	sodium_memzero(subkey, sizeof(subkey));
	pfree(ad.data);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt %s", what),
				 errdetail("The value does not authenticate under key id %d: the key differs from the one that encrypted it, or the value was altered or copied from another row.",
						   key_id),
				 errhint("Check that the server was started with the encryption key that stored the value.")));

	buf[prefix + mlen] = '\0';
	*plen = mlen;
	return buf;
}


/* ---------------------------------------------------------------------
 * Queries, run as the extension's owner
 * ---------------------------------------------------------------------
 */

/*
 * Connect to SPI as the role that writes the clerk tables, with
 * search_path pinned (clerk_become_writer) so that no object of the
 * caller's choosing can stand in for ours.
 */
static void
vault_spi_begin(VaultSpi *spi)
{
	spi->caller_cxt = CurrentMemoryContext;
	clerk_become_writer(&spi->saved, CLERK_SQL_FOR_VAULT);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
vault_spi_end(VaultSpi *spi)
{
	SPI_finish();
	clerk_restore_user(&spi->saved);
}

/* Run one statement with parameters; anything but the expected result is a bug. */
static void
vault_exec(const char *sql, int nargs, Oid *types, Datum *values,
		   const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "clerk_sync: unexpected result %s from \"%s\"",
			 SPI_result_code_string(rc), sql);
}

/* The role calling us, for created_by and the audit log. */
static char *
vault_calling_role(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

/*
 * Error unless the organization is in clerk.organizations and not deleted.
 * Its row stays locked until the end of the transaction, which keeps it
 * from being deleted meanwhile and makes concurrent stores for the same
 * organization take turns instead of colliding on the active-row index.
 */
static void
vault_check_organization(const char *organization_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(organization_id);
	vault_exec("SELECT deleted_at IS NOT NULL FROM clerk.organizations"
			   " WHERE id = $1 FOR NO KEY UPDATE",
			   1, types, values, NULL, SPI_OK_SELECT);
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


/* ---------------------------------------------------------------------
 * Validating credentials
 * ---------------------------------------------------------------------
 */

static const VaultService *
vault_find_service(const char *name)
{
	for (int i = 0; i < (int) lengthof(vault_services); i++)
	{
		if (strcmp(vault_services[i].name, name) == 0)
			return &vault_services[i];
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown service \"%s\"", name),
			 errhint("Credentials can be stored for the services cliniko and chatwoot.")));
	return NULL;				/* keep compiler quiet */
}

/* true if s (not NUL-terminated) has a space, a control character or DEL */
static bool
vault_has_blank_or_control(const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c <= ' ' || c == 0x7f)
			return true;
	}
	return false;
}

/* true if s is 1 to 18 digits, not all zero */
static bool
vault_is_positive_integer(const char *s, int len)
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
vault_check_field(const VaultService *service, const VaultField *field,
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
			if (len > VAULT_MAX_FIELD_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("field \"%s\" of %s credentials is too long",
								field->name, service->name),
						 errdetail("It may be at most %d bytes.", VAULT_MAX_FIELD_LEN)));
			if (vault_has_blank_or_control(s, len))
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
					ok = vault_is_positive_integer(digits, strlen(digits));
				}
				else
					ok = (s != NULL && vault_is_positive_integer(s, len));
				if (!ok)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("field \"%s\" of %s credentials must be a positive integer",
									field->name, service->name),
							 errdetail("Give it as a JSON number or as a string of digits.")));
				break;
			}

		case FIELD_URL:
			{
				int			rest = 0;
				int			authority;

				if (s != NULL && len > 8 && strncmp(s, "https://", 8) == 0)
					rest = 8;
				else if (s != NULL && len > 7 && strncmp(s, "http://", 7) == 0)
					rest = 7;
				for (authority = rest; authority < len; authority++)
				{
					if (s[authority] == '/' || s[authority] == '?' ||
						s[authority] == '#')
						break;
				}
				if (rest == 0 || authority == rest || len > VAULT_MAX_FIELD_LEN ||
					vault_has_blank_or_control(s, len) ||
					memchr(s + rest, '@', authority - rest) != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("field \"%s\" of %s credentials must be an http or https URL",
									field->name, service->name),
							 errdetail("It must start with https:// or http://, name a host, be at most %d bytes, and carry no user name, password, spaces or control characters.",
									   VAULT_MAX_FIELD_LEN)));
				break;
			}
	}
}

/*
 * Check credentials against the service's fields and return them as a new
 * jsonb value holding exactly those fields, defaults filled in.
 */
static Jsonb *
vault_check_credentials(const VaultService *service, Jsonb *input)
{
	JsonbValue	values[VAULT_MAX_FIELDS];
	bool		present[VAULT_MAX_FIELDS] = {false};
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
		vault_check_field(service, &service->fields[f], &v);
		values[f] = v;
		present[f] = true;
	}

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int f = 0; f < service->nfields; f++)
	{
		const VaultField *field = &service->fields[f];
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

/* Describe a credential in messages: no secret, only its row. */
static char *
vault_describe(const char *organization_id, const char *service_name)
{
	return psprintf("the %s credentials of organization \"%s\"",
					service_name, organization_id);
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
	char	   *service_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *input = PG_GETARG_JSONB_P(2);
	const VaultService *service = vault_find_service(service_name);
	char	   *actor = vault_calling_role();
	Jsonb	   *credentials;
	bytea	   *sealed;
	int32		key_id;
	int64		replaced = 0;
	int64		id;
	bool		isnull;
	VaultSpi	spi;
	Oid			types[5] = {TEXTOID, TEXTOID, BYTEAOID, INT4OID, TEXTOID};
	Datum		values[5];
	StringInfoData details;

	credentials = vault_check_credentials(service, input);
	vault_require_key();

	vault_spi_begin(&spi);
	vault_check_organization(organization_id);

	sealed = vault_seal(VAULT_PURPOSE_CREDENTIALS, organization_id, service->name,
						(unsigned char *) VARDATA(credentials),
						VARSIZE(credentials) - VARHDRSZ, &key_id);
	sodium_memzero(credentials, VARSIZE(credentials));
	if ((Pointer) input != DatumGetPointer(PG_GETARG_DATUM(2)))
		sodium_memzero(input, VARSIZE(input));

	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service->name);
	vault_exec("UPDATE clerk.api_credentials"
			   " SET is_active = false, updated_at = pg_catalog.now()"
			   " WHERE organization_id = $1 AND service_name = $2 AND is_active"
			   " RETURNING id",
			   2, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed > 0)
		replaced = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));

	values[2] = PointerGetDatum(sealed);
	values[3] = Int32GetDatum(key_id);
	values[4] = CStringGetTextDatum(actor);
	vault_exec("INSERT INTO clerk.api_credentials"
			   " (organization_id, service_name, credentials_encrypted, key_id, created_by)"
			   " VALUES ($1, $2, $3, $4, $5) RETURNING id",
			   5, types, values, NULL, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));

	initStringInfo(&details);
	appendStringInfoString(&details, "{\"service\": ");
	escape_json(&details, service->name);
	appendStringInfo(&details, ", \"key_id\": %d", key_id);
	if (replaced > 0)
		appendStringInfo(&details, ", \"replaced_id\": " INT64_FORMAT, replaced);
	appendStringInfoChar(&details, '}');
	clerk_audit(actor, "credentials.store", "api_credentials",
				psprintf(INT64_FORMAT, id), organization_id, -1, details.data);

	vault_spi_end(&spi);
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
	char	   *service_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const VaultService *service = vault_find_service(service_name);
	char	   *actor = vault_calling_role();
	Jsonb	   *result = NULL;
	VaultSpi	spi;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	vault_require_key();

	vault_spi_begin(&spi);
	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service->name);
	vault_exec("SELECT id, key_id, credentials_encrypted FROM clerk.api_credentials"
			   " WHERE organization_id = $1 AND service_name = $2 AND is_active",
			   2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 3, &isnull));
		MemoryContext oldcxt;
		unsigned char *buf;
		size_t		len;
		StringInfoData details;

		/* the plaintext is the result: put it where the caller's data lives */
		oldcxt = MemoryContextSwitchTo(spi.caller_cxt);
		buf = vault_open(VAULT_PURPOSE_CREDENTIALS, organization_id, service->name,
						 sealed, key_id, VARHDRSZ, &len,
						 vault_describe(organization_id, service->name));
		MemoryContextSwitchTo(oldcxt);
		SET_VARSIZE(buf, VARHDRSZ + len);
		result = (Jsonb *) buf;

		initStringInfo(&details);
		appendStringInfoString(&details, "{\"service\": ");
		escape_json(&details, service->name);
		appendStringInfo(&details, ", \"key_id\": %d}", key_id);
		clerk_audit(actor, "credentials.read", "api_credentials",
					psprintf(INT64_FORMAT, id), organization_id, -1, details.data);
	}
	vault_spi_end(&spi);

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
	char	   *service_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const VaultService *service = vault_find_service(service_name);
	char	   *actor = vault_calling_role();
	bool		found;
	VaultSpi	spi;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	vault_spi_begin(&spi);
	values[0] = CStringGetTextDatum(organization_id);
	values[1] = CStringGetTextDatum(service->name);
	vault_exec("UPDATE clerk.api_credentials"
			   " SET is_active = false, updated_at = pg_catalog.now()"
			   " WHERE organization_id = $1 AND service_name = $2 AND is_active"
			   " RETURNING id",
			   2, types, values, NULL, SPI_OK_UPDATE_RETURNING);
	found = (SPI_processed > 0);
	if (found)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		StringInfoData details;

		initStringInfo(&details);
		appendStringInfoString(&details, "{\"service\": ");
		escape_json(&details, service->name);
		appendStringInfoChar(&details, '}');
		clerk_audit(actor, "credentials.deactivate", "api_credentials",
					psprintf(INT64_FORMAT, id), organization_id, -1, details.data);
	}
	vault_spi_end(&spi);

	PG_RETURN_BOOL(found);
}

/*
 * clerk_rotate_encryption_key() RETURNS bigint
 *
 * Re-encrypt every stored value (active or not, and the stored Clerk secret
 * key) that is not under the newest key id, in the caller's transaction:
 * all of it or, on any error, none of it.  Returns how many values were
 * re-encrypted.
 */
Datum
clerk_rotate_encryption_key(PG_FUNCTION_ARGS)
{
	char	   *actor = vault_calling_role();
	bool		from[VAULT_MAX_KEYS] = {false};
	int64		ncredentials = 0;
	int64		nsecrets = 0;
	int32		current;
	MemoryContext rowcxt;
	SPITupleTable *rows;
	uint64		nrows;
	VaultSpi	spi;
	Oid			types[3] = {BYTEAOID, INT4OID, INT8OID};
	Oid			selecttypes[1] = {INT4OID};
	Datum		values[3];
	StringInfoData details;
	bool		first = true;

	vault_require_key();
	current = vault_key_ids[vault_current];

	vault_spi_begin(&spi);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "clerk_sync rotation",
								   ALLOCSET_DEFAULT_SIZES);

	values[0] = Int32GetDatum(current);
	vault_exec("SELECT id, organization_id, service_name, key_id, credentials_encrypted"
			   " FROM clerk.api_credentials WHERE key_id <> $1 ORDER BY id FOR UPDATE",
			   1, selecttypes, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tuple = rows->vals[i];
		TupleDesc	tupdesc = rows->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(rowcxt);
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		char	   *organization_id = SPI_getvalue(tuple, tupdesc, 2);
		char	   *service_name = SPI_getvalue(tuple, tupdesc, 3);
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 4, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 5, &isnull));
		unsigned char *plain;
		size_t		len;
		int32		new_key_id;

		plain = vault_open(VAULT_PURPOSE_CREDENTIALS, organization_id, service_name,
						   sealed, key_id, 0, &len,
						   vault_describe(organization_id, service_name));
		from[vault_key_index(key_id)] = true;
		values[0] = PointerGetDatum(vault_seal(VAULT_PURPOSE_CREDENTIALS,
											   organization_id, service_name,
											   plain, len, &new_key_id));
		values[1] = Int32GetDatum(new_key_id);
		values[2] = Int64GetDatum(id);
		vault_exec("UPDATE clerk.api_credentials"
				   " SET credentials_encrypted = $1, key_id = $2 WHERE id = $3",
				   3, types, values, NULL, SPI_OK_UPDATE);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(rowcxt); /* zeroes the plaintext */
		ncredentials++;
	}

	values[0] = Int32GetDatum(current);
	vault_exec("SELECT name, key_id, value_encrypted FROM clerk.secrets"
			   " WHERE key_id <> $1 ORDER BY name FOR UPDATE",
			   1, selecttypes, values, NULL, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tuple = rows->vals[i];
		TupleDesc	tupdesc = rows->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(rowcxt);
		bool		isnull;
		char	   *name = SPI_getvalue(tuple, tupdesc, 1);
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 3, &isnull));
		Oid			secrettypes[3] = {BYTEAOID, INT4OID, TEXTOID};
		unsigned char *plain;
		size_t		len;
		int32		new_key_id;

		plain = vault_open(VAULT_PURPOSE_SECRET, "", name, sealed, key_id, 0, &len,
						   psprintf("the stored secret \"%s\"", name));
		from[vault_key_index(key_id)] = true;
		values[0] = PointerGetDatum(vault_seal(VAULT_PURPOSE_SECRET, "", name,
											   plain, len, &new_key_id));
		values[1] = Int32GetDatum(new_key_id);
		values[2] = CStringGetTextDatum(name);
		vault_exec("UPDATE clerk.secrets"
				   " SET value_encrypted = $1, key_id = $2 WHERE name = $3",
				   3, secrettypes, values, NULL, SPI_OK_UPDATE);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(rowcxt);
		nsecrets++;
	}

	initStringInfo(&details);
	appendStringInfo(&details,
					 "{\"key_id\": %d, \"credentials\": " INT64_FORMAT
					 ", \"secrets\": " INT64_FORMAT ", \"from_key_ids\": [",
					 current, ncredentials, nsecrets);
	for (int i = 0; i < vault_nkeys; i++)
	{
		if (!from[i])
			continue;
		appendStringInfo(&details, "%s%d", first ? "" : ", ", vault_key_ids[i]);
		first = false;
	}
	appendStringInfoString(&details, "]}");
	clerk_audit(actor, "encryption_key.rotate", "encryption_key",
				psprintf("%d", current), NULL, -1, details.data);

	MemoryContextDelete(rowcxt);
	vault_spi_end(&spi);

	PG_RETURN_INT64(ncredentials + nsecrets);
}

/*
 * clerk_set_secret_key(key text) RETURNS void
 *
 * Store the Clerk secret key encrypted; the sync then prefers it to the
 * clerk_sync.secret_key setting and CLERK_SECRET_KEY.  An empty string
 * removes the stored key.  Nothing returns it to SQL.
 */
/*
 * Store (or, with len 0, remove) the secret called `name` in clerk.secrets,
 * encrypted, and audit it as <audit>.set / <audit>.clear.
 */
static void
vault_set_named(const char *name, const char *audit, const char *s, int len)
{
	char	   *actor = vault_calling_role();
	VaultSpi	spi;
	Oid			types[4] = {TEXTOID, BYTEAOID, INT4OID, TEXTOID};
	Datum		values[4];

	if (len == 0)
	{
		vault_spi_begin(&spi);
		values[0] = CStringGetTextDatum(name);
		vault_exec("DELETE FROM clerk.secrets WHERE name = $1",
				   1, types, values, NULL, SPI_OK_DELETE);
		if (SPI_processed > 0)
			clerk_audit(actor, psprintf("%s.clear", audit), "secret", name, NULL, -1, "{}");
		vault_spi_end(&spi);
		return;
	}

	if (len >= CLERK_MAX_KEY_LEN || vault_has_blank_or_control(s, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s", strcmp(name, VAULT_CLERK_SECRET) == 0 ? "Clerk secret key" : "secret"),
				 errdetail("A %s is shorter than %d bytes and has no spaces or control characters.",
						   strcmp(name, VAULT_CLERK_SECRET) == 0 ? "Clerk secret key" : "secret",
						   CLERK_MAX_KEY_LEN)));
	vault_require_key();

	vault_spi_begin(&spi);
	{
		int32		key_id;
		StringInfoData details;

		values[0] = CStringGetTextDatum(name);
		values[1] = PointerGetDatum(vault_seal(VAULT_PURPOSE_SECRET, "", name,
											   (const unsigned char *) s, len,
											   &key_id));
		values[2] = Int32GetDatum(key_id);
		values[3] = CStringGetTextDatum(actor);
		vault_exec("INSERT INTO clerk.secrets (name, value_encrypted, key_id, set_by)"
				   " VALUES ($1, $2, $3, $4)"
				   " ON CONFLICT (name) DO UPDATE"
				   " SET value_encrypted = excluded.value_encrypted,"
				   " key_id = excluded.key_id, set_by = excluded.set_by,"
				   " updated_at = pg_catalog.now()",
				   4, types, values, NULL, SPI_OK_INSERT);

		initStringInfo(&details);
		appendStringInfo(&details, "{\"key_id\": %d}", key_id);
		clerk_audit(actor, psprintf("%s.set", audit), "secret", name, NULL, -1, details.data);
	}
	vault_spi_end(&spi);
}

Datum
clerk_set_secret_key(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);

	PG_TRY();
	{
		vault_set_named(VAULT_CLERK_SECRET, "secret_key", VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
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

void
clerk_vault_set_named_secret(const char *name, const char *value)
{
	vault_set_named(name, name, value, strlen(value));
}


/* ---------------------------------------------------------------------
 * C interface
 * ---------------------------------------------------------------------
 */

char *
clerk_vault_get_named_secret(const char *name)
{
	char	   *result = NULL;
	VaultSpi	spi;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];

	/* a database without the extension has nothing stored */
	if (!OidIsValid(get_extension_oid("clerk_sync", true)))
		return NULL;

	vault_spi_begin(&spi);
	values[0] = CStringGetTextDatum(name);
	vault_exec("SELECT key_id, value_encrypted FROM clerk.secrets WHERE name = $1",
			   1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	tupdesc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		key_id = DatumGetInt32(SPI_getbinval(tuple, tupdesc, 1, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tuple, tupdesc, 2, &isnull));
		MemoryContext oldcxt;
		size_t		len;

		if (vault_nkeys == 0)
			ereport(ERROR,
					(errcode(CLERK_ERRCODE_NO_KEY),
					 errmsg("a secret (%s) is stored but no credentials encryption key is loaded", name),
					 errdetail("clerk_set_secret_key() stored the key encrypted, and it cannot be read without the encryption key."),
					 errhint("Start the server with the encryption key it was stored under, or remove the stored key with clerk_set_secret_key('').")));

		oldcxt = MemoryContextSwitchTo(spi.caller_cxt);
		result = (char *) vault_open(VAULT_PURPOSE_SECRET, "", name,
									 sealed, key_id, 0, &len,
									 strcmp(name, VAULT_CLERK_SECRET) == 0 ?
									 "the stored Clerk secret key" : "a stored secret");
		MemoryContextSwitchTo(oldcxt);
	}
	vault_spi_end(&spi);

	return result;
}

char *
clerk_vault_stored_secret_key(void)
{
	return clerk_vault_get_named_secret(VAULT_CLERK_SECRET);
}

/*
 * Define the vault's setting and load the key ring, once, in the
 * postmaster, for every backend to inherit.  A library loaded later has
 * neither: PGC_POSTMASTER settings can only be defined while preloading,
 * and the credential functions then say that no key is loaded.
 */
void
clerk_vault_init(void)
{
	if (sodium_init() < 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libsodium")));

	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("clerk_sync.encryption_key_command",
							   "Command that prints the credentials encryption key ring.",
							   "Run once at server start. It prints one key, or one id:key per line, each key 64 hexadecimal digits or the base64 of 32 bytes; the highest id encrypts. When empty, the CREDENTIALS_ENCRYPTION_KEY environment variable is read instead.",
							   &clerk_sync_encryption_key_command,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	vault_load_key_ring();
}
