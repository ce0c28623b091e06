/*
 * keyring.c
 *		The root key ring: loaded once in the postmaster, kept in protected
 *		memory, and the source of one subkey per purpose.
 *
 * Keys.  A ring of up to CLERK_KEYRING_MAX_KEYS root keys of 32 bytes is
 * read once, in the postmaster while shared_preload_libraries is processed,
 * from the output of clerk_sync.encryption_key_command or else from the
 * server's CREDENTIALS_ENCRYPTION_KEY environment variable.  It is kept in
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
 */
#include "postgres.h"

#include <sodium.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"

#include "base/settings.h"
#include "vault/environment.h"
#include "vault/keyring.h"

StaticAssertDecl(CLERK_KEY_BYTES == crypto_kdf_KEYBYTES,
				 "root keys must have the size crypto_kdf takes");

/* crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) characters */
#define KEYRING_KDF_CONTEXT		"clerkvlt"

#define KEYRING_MAX_TEXT		8192
#define KEYRING_ENV				"CREDENTIALS_ENCRYPTION_KEY"

/* clerk_sync.encryption_key_command */
static char *clerk_sync_encryption_key_command = NULL;

/* Where the ring is read from */
typedef enum KeyringSource
{
	KEYRING_FROM_COMMAND,		/* clerk_sync.encryption_key_command */
	KEYRING_FROM_ENVIRONMENT	/* CREDENTIALS_ENCRYPTION_KEY */
} KeyringSource;

/*
 * The key ring.  Ids and count are ordinary memory; the key bytes are in
 * keyring_bytes (entry i at offset i * CLERK_KEY_BYTES), sodium_malloc'd
 * and kept PROT_NONE except inside clerk_keyring_subkey().
 */
static int	keyring_nkeys = 0;
static int32 keyring_ids[CLERK_KEYRING_MAX_KEYS];
static int	keyring_newest = -1;	/* entry with the highest id */
static unsigned char *keyring_bytes = NULL;


/* sodium_malloc(size), or the end of the postmaster when it fails */
static void *
keyring_alloc(size_t size)
{
	void	   *p = sodium_malloc(size);

	if (p == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return p;
}

/*
 * The primary message of a defect of the ring read from source: of the
 * ring as a whole, or else of one of its keys.  Called inside ereport().
 */
static int
errmsg_invalid(KeyringSource source, bool whole_ring)
{
	if (source == KEYRING_FROM_COMMAND)
		return whole_ring ?
			errmsg("invalid credentials encryption key ring in the output of clerk_sync.encryption_key_command") :
			errmsg("invalid credentials encryption key in the output of clerk_sync.encryption_key_command");
	return whole_ring ?
		errmsg("invalid credentials encryption key ring in the " KEYRING_ENV " environment variable") :
		errmsg("invalid credentials encryption key in the " KEYRING_ENV " environment variable");
}

/*
 * Decode one root key: 64 hexadecimal digits, or standard or URL-safe
 * base64, padded or not, of exactly 32 bytes (a Fernet key is URL-safe
 * base64 of 32 bytes, so one works as is).
 */
static bool
keyring_decode_key(const char *s, size_t len, unsigned char *out)
{
	static const int variants[] = {
		sodium_base64_VARIANT_ORIGINAL,
		sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
		sodium_base64_VARIANT_URLSAFE,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING
	};
	size_t		binlen;
	const char *end;

	if (len == 2 * CLERK_KEY_BYTES)
		return sodium_hex2bin(out, CLERK_KEY_BYTES, s, len, NULL,
							  &binlen, &end) == 0 &&
			binlen == CLERK_KEY_BYTES && end == s + len;

	for (int i = 0; i < (int) lengthof(variants); i++)
	{
		if (sodium_base642bin(out, CLERK_KEY_BYTES, s, len, NULL,
							  &binlen, &end, variants[i]) == 0 &&
			binlen == CLERK_KEY_BYTES && end == s + len)
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
keyring_parse(const char *text, KeyringSource source)
{
	const char *separators = " \t\r\n,";
	const char *p = text;
	int			entry = 0;

	for (;;)
	{
		const char *token;
		size_t		len;
		const char *colon;
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

		if (keyring_nkeys >= CLERK_KEYRING_MAX_KEYS)
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_invalid(source, true),
					 errdetail("The ring holds more than %d keys.", CLERK_KEYRING_MAX_KEYS)));

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
						 errmsg_invalid(source, true),
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
						 errmsg_invalid(source, true),
						 errdetail("Entry %d has no key id, and a ring of several keys needs one on every entry.",
								   entry),
						 errhint("Write each entry as id:key, such as 1:<old key> and 2:<new key>.")));
			id = 1;
			key = token;
			keylen = len;
		}

		if (clerk_keyring_index((int32) id) >= 0)
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_invalid(source, true),
					 errdetail("Key id %d appears more than once.", (int) id)));

		if (!keyring_decode_key(key, keylen,
								keyring_bytes + keyring_nkeys * CLERK_KEY_BYTES))
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_invalid(source, false),
					 errdetail("Entry %d is neither 64 hexadecimal digits nor the standard or URL-safe base64 encoding of 32 bytes.",
							   entry),
					 errhint("Generate a key with \"openssl rand -hex 32\".")));
		if (sodium_is_zero(keyring_bytes + keyring_nkeys * CLERK_KEY_BYTES,
						   CLERK_KEY_BYTES))
			ereport(FATAL,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_invalid(source, false),
					 errdetail("Entry %d is all zero bytes.", entry),
					 errhint("Generate a key with \"openssl rand -hex 32\".")));

		keyring_ids[keyring_nkeys] = (int32) id;
		if (keyring_newest < 0 || id > keyring_ids[keyring_newest])
			keyring_newest = keyring_nkeys;
		keyring_nkeys++;
	}

	if (keyring_nkeys == 0)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_invalid(source, false),
				 errdetail("No key entry was found in it.")));
}

/*
 * Run clerk_sync.encryption_key_command and return its output in a
 * sodium_malloc'd, NUL-terminated buffer.  The command itself is never
 * logged, since it may carry a key.
 */
static char *
keyring_run_command(const char *command)
{
	char	   *buf = keyring_alloc(KEYRING_MAX_TEXT + 1);
	size_t		len = 0;
	FILE	   *fh;
	int			rc;

	fh = OpenPipeStream(command, "r");
	if (fh == NULL)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not run clerk_sync.encryption_key_command: %m")));

	while (len <= KEYRING_MAX_TEXT)
	{
		size_t		n = fread(buf + len, 1, KEYRING_MAX_TEXT + 1 - len, fh);

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
	if (len > KEYRING_MAX_TEXT)
		ereport(FATAL,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("clerk_sync.encryption_key_command printed more than %d bytes",
						KEYRING_MAX_TEXT)));
	buf[len] = '\0';
	if (strlen(buf) != len)
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_invalid(KEYRING_FROM_COMMAND, false),
				 errdetail("The output contains a NUL byte.")));
	return buf;
}

/*
 * The ring in the environment, in a sodium_malloc'd buffer, or NULL when
 * the variable is not set or empty.
 */
static char *
keyring_from_environment(void)
{
	char	   *text;

	/*
	 * Out of the environment of this and every process started from now on
	 * (backends, archive_command, COPY ... PROGRAM), its bytes overwritten
	 * where they were.  With EXEC_BACKEND, each backend reloads the ring and
	 * still needs it.
	 */
#ifndef EXEC_BACKEND
	text = clerk_take_env(KEYRING_ENV);
#else
	{
		const char *env = getenv(KEYRING_ENV);

		text = NULL;
		if (env != NULL)
		{
			text = keyring_alloc(strlen(env) + 1);
			memcpy(text, env, strlen(env) + 1);
		}
	}
#endif

	if (text != NULL && text[0] == '\0')
	{
		sodium_free(text);
		text = NULL;
	}
	if (text != NULL && strlen(text) > KEYRING_MAX_TEXT)
		ereport(FATAL,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg(KEYRING_ENV " is longer than %d bytes", KEYRING_MAX_TEXT)));
	return text;
}

/*
 * Load the key ring in the postmaster: from the command if one is set,
 * else from the environment.  Without either, the server starts and the
 * credential functions report that no key is loaded.
 */
static void
keyring_load(void)
{
	char	   *text;
	KeyringSource source;

	keyring_bytes = keyring_alloc(CLERK_KEYRING_MAX_KEYS * CLERK_KEY_BYTES);

	if (clerk_sync_encryption_key_command != NULL &&
		clerk_sync_encryption_key_command[0] != '\0')
	{
		source = KEYRING_FROM_COMMAND;
		text = keyring_run_command(clerk_sync_encryption_key_command);
	}
	else
	{
		source = KEYRING_FROM_ENVIRONMENT;
		text = keyring_from_environment();
		if (text == NULL)
		{
			sodium_free(keyring_bytes);
			keyring_bytes = NULL;
			ereport(LOG,
					(errmsg("clerk_sync: no credentials encryption key is configured"),
					 errdetail("Neither clerk_sync.encryption_key_command nor " KEYRING_ENV " is set; storing and reading credentials will fail.")));
			return;
		}
	}

	keyring_parse(text, source);
	sodium_free(text);			/* zeroes it */

	if (sodium_mprotect_noaccess(keyring_bytes) != 0)
		ereport(FATAL,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not protect the credentials encryption keys: %m")));

	if (source == KEYRING_FROM_COMMAND)
		ereport(LOG,
				(errmsg_plural("clerk_sync: loaded %d credentials encryption key from the output of clerk_sync.encryption_key_command; new values use key id %d",
							   "clerk_sync: loaded %d credentials encryption keys from the output of clerk_sync.encryption_key_command; new values use key id %d",
							   keyring_nkeys,
							   keyring_nkeys, keyring_ids[keyring_newest])));
	else
		ereport(LOG,
				(errmsg_plural("clerk_sync: loaded %d credentials encryption key from the " KEYRING_ENV " environment variable; new values use key id %d",
							   "clerk_sync: loaded %d credentials encryption keys from the " KEYRING_ENV " environment variable; new values use key id %d",
							   keyring_nkeys,
							   keyring_nkeys, keyring_ids[keyring_newest])));
}

void
clerk_keyring_require(void)
{
	if (keyring_nkeys > 0)
		return;
	if (!clerk_sync_preloaded)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg("no credentials encryption key is loaded"),
				 errdetail("clerk_sync reads its encryption key only when it is loaded through shared_preload_libraries at server start."),
				 errhint("Add clerk_sync to shared_preload_libraries, set " KEYRING_ENV " in the server's environment or clerk_sync.encryption_key_command, and restart the server.")));
	ereport(ERROR,
			(errcode(CLERK_ERRCODE_NO_KEY),
			 errmsg("no credentials encryption key is loaded"),
			 errdetail("Neither clerk_sync.encryption_key_command nor the " KEYRING_ENV " environment variable was set when the server started."),
			 errhint("Set one of them to a 32-byte key, such as the output of \"openssl rand -hex 32\", and restart the server.")));
}

int
clerk_keyring_size(void)
{
	return keyring_nkeys;
}

int32
clerk_keyring_id(int idx)
{
	Assert(idx >= 0 && idx < keyring_nkeys);
	return keyring_ids[idx];
}

int
clerk_keyring_index(int32 key_id)
{
	for (int i = 0; i < keyring_nkeys; i++)
	{
		if (keyring_ids[i] == key_id)
			return i;
	}
	return -1;
}

int
clerk_keyring_newest(void)
{
	Assert(keyring_nkeys > 0);
	return keyring_newest;
}

void
clerk_keyring_subkey(int idx, uint64 subkey_id, unsigned char *subkey)
{
	Assert(idx >= 0 && idx < keyring_nkeys);
	if (sodium_mprotect_readonly(keyring_bytes) != 0)
		elog(ERROR, "could not unprotect the credentials encryption keys: %m");
	crypto_kdf_derive_from_key(subkey, CLERK_KEY_BYTES, subkey_id,
							   KEYRING_KDF_CONTEXT,
							   keyring_bytes + idx * CLERK_KEY_BYTES);
	if (sodium_mprotect_noaccess(keyring_bytes) != 0)
		elog(ERROR, "could not protect the credentials encryption keys: %m");
}

/*
 * Initialize libsodium, and define the setting and load the key ring, once,
 * in the postmaster, for every backend to inherit.  A library loaded later
 * has neither: PGC_POSTMASTER settings can only be defined while
 * preloading, and the credential functions then say that no key is loaded.
 */
void
clerk_keyring_init(void)
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

	keyring_load();
}
