/*
 * seal.c
 *		Sealing values under the newest root key, and opening them again.
 *
 * Format 2 of a sealed value, stored as bytea:
 *
 *		1 byte		format version (2)
 *		4 bytes		key id, big-endian
 *		24 bytes	random nonce
 *		n + 16		XChaCha20-Poly1305-IETF ciphertext and tag
 *
 * The associated data binds the value to its row: format version, key id,
 * purpose, then the organization id and service name (or, for a stored
 * secret, its name), then the row's id (format 2; 0 for a stored secret)
 * and its state (active, or deactivated).  A value altered by one byte,
 * copied onto another row (another organization's or service's, or an
 * older or newer row of the same ones), or of a deactivated row made active
 * again, fails to open with an error.  Format 1 (1.0's, without the row id
 * or state) opens only to be re-sealed in format 2
 * (clerk_rotate_encryption_key(), which the update from 1.0 runs).
 *
 * Every opened plaintext lives in a memory context of its own and is zeroed
 * when that context is reset or deleted.
 */
#include "postgres.h"

#include <sodium.h>

#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "base/settings.h"
#include "vault/keyring.h"
#include "vault/seal.h"

#define SEAL_FORMAT_VERSION		2
/* the format 1.0 wrote: no row id in the associated data */
#define SEAL_FORMAT_NO_ROW_ID	1
#define SEAL_NONCE_BYTES		crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG_BYTES			crypto_aead_xchacha20poly1305_ietf_ABYTES
/* version byte and key id: the part of the header bound as associated data */
#define SEAL_PREFIX_BYTES		5
#define SEAL_HEADER_BYTES		(SEAL_PREFIX_BYTES + SEAL_NONCE_BYTES)

StaticAssertDecl(CLERK_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
				 "root keys and AEAD keys must have the same size");

/*
 * Largest plaintext sealed or opened.  It must stay well below the memory
 * allocator's chunk limit (8kB) so that an opened plaintext is never a
 * block of its own, which pfree() would hand back to malloc before the
 * context's callback zeroes it.
 */
#define SEAL_MAX_PLAINTEXT		4096

/*
 * clerk_sync.seal_format: the format new values are sealed in.  Only the
 * upgrade test sets it (to 1, to make values as 1.0 stored them).
 */
static int	clerk_sync_seal_format = SEAL_FORMAT_VERSION;

/* Zeroes an opened plaintext when its memory context goes away. */
typedef struct SealWipe
{
	MemoryContextCallback cb;
	unsigned char *buf;
	size_t		len;
} SealWipe;


static void
seal_append_uint32(StringInfo buf, uint32 v)
{
	unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};

	appendBinaryStringInfo(buf, (char *) b, 4);
}

/*
 * The associated data: a domain tag, the header's version and key id, the
 * purpose, and the row (scope and name, each length-prefixed so that no
 * two rows share an encoding, and from format 2 on the row's id and
 * whether it is active).
 */
static void
seal_associated_data(StringInfo ad, const unsigned char *prefix,
					 const ClerkSealedRow *row)
{
	initStringInfo(ad);
	appendBinaryStringInfo(ad, "clerk_sync vault", 16);
	appendBinaryStringInfo(ad, (const char *) prefix, SEAL_PREFIX_BYTES);
	appendStringInfoChar(ad, (char) row->purpose);
	seal_append_uint32(ad, strlen(row->scope));
	appendStringInfoString(ad, row->scope);
	seal_append_uint32(ad, strlen(row->name));
	appendStringInfoString(ad, row->name);
	if (prefix[0] != SEAL_FORMAT_NO_ROW_ID)
	{
		seal_append_uint32(ad, (uint32) ((uint64) row->id >> 32));
		seal_append_uint32(ad, (uint32) row->id);
		appendStringInfoChar(ad, row->inactive ? 'i' : 'a');
	}
}

void
clerk_seal_init(void)
{
	DefineCustomIntVariable("clerk_sync.seal_format",
							"Format in which new values are encrypted (1 is 1.0's, without the row id).",
							"For the upgrade test only: values of format 1 can be moved between rows of one organization and service.",
							&clerk_sync_seal_format,
							SEAL_FORMAT_VERSION, SEAL_FORMAT_NO_ROW_ID, SEAL_FORMAT_VERSION,
							PGC_SUSET,
							GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);
}

bytea *
clerk_seal(const ClerkSealedRow *row, const unsigned char *plain, size_t plen,
		   int32 *key_id)
{
	unsigned char subkey[CLERK_KEY_BYTES];
	StringInfoData ad;
	unsigned long long clen;
	unsigned char *out;
	bytea	   *result;
	int			idx;
	int32		id;

	clerk_keyring_require();
	if (plen > SEAL_MAX_PLAINTEXT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value to encrypt is too large"),
				 errdetail("It may be at most %d bytes.", SEAL_MAX_PLAINTEXT)));

	idx = clerk_keyring_newest();
	id = clerk_keyring_id(idx);
	result = (bytea *) palloc(VARHDRSZ + SEAL_HEADER_BYTES + plen + SEAL_TAG_BYTES);
	SET_VARSIZE(result, VARHDRSZ + SEAL_HEADER_BYTES + plen + SEAL_TAG_BYTES);
	out = (unsigned char *) VARDATA(result);
	out[0] = (unsigned char) clerk_sync_seal_format;
	out[1] = (uint32) id >> 24;
	out[2] = (uint32) id >> 16;
	out[3] = (uint32) id >> 8;
	out[4] = (uint32) id;
	randombytes_buf(out + SEAL_PREFIX_BYTES, SEAL_NONCE_BYTES);

	seal_associated_data(&ad, out, row);
	clerk_keyring_subkey(idx, row->purpose, subkey);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_HEADER_BYTES, &clen,
											   plain, plen,
											   (unsigned char *) ad.data, ad.len,
											   NULL, out + SEAL_PREFIX_BYTES,
											   subkey);
	sodium_memzero(subkey, sizeof(subkey));
	pfree(ad.data);
	Assert(clen == plen + SEAL_TAG_BYTES);

	*key_id = id;
	return result;
}

static void
seal_wipe(void *arg)
{
	SealWipe   *wipe = (SealWipe *) arg;

	sodium_memzero(wipe->buf, wipe->len);
}

/*
 * A zeroed buffer of len bytes for a plaintext, in a new child of parent
 * that zeroes it again when it is reset or deleted.
 */
static unsigned char *
seal_plaintext_buffer(MemoryContext parent, size_t len)
{
	MemoryContext cxt;
	SealWipe   *wipe;
	unsigned char *buf;

	cxt = AllocSetContextCreate(parent, "clerk_sync plaintext",
								ALLOCSET_DEFAULT_SIZES);
	buf = MemoryContextAllocZero(cxt, len);
	wipe = MemoryContextAlloc(cxt, sizeof(SealWipe));
	wipe->buf = buf;
	wipe->len = len;
	wipe->cb.func = seal_wipe;
	wipe->cb.arg = wipe;
	MemoryContextRegisterResetCallback(cxt, &wipe->cb);
	return buf;
}

/*
 * The primary message of a value that does not open: which row it
 * belongs to.  Called inside ereport().
 */
static int
errmsg_cannot_open(const ClerkSealedRow *row)
{
	if (row->purpose == CLERK_SEAL_CREDENTIALS)
		return errmsg("could not decrypt the %s credentials of organization \"%s\"",
					  row->name, row->scope);
	if (strcmp(row->name, CLERK_SECRET_KEY_ROW) == 0)
		return errmsg("could not decrypt the stored Clerk secret key");
	return errmsg("could not decrypt the stored secret \"%s\"", row->name);
}

unsigned char *
clerk_open_sealed(const ClerkSealedRow *row, bytea *sealed, int32 row_key_id,
				  size_t prefix, MemoryContext parent, size_t *plen)
{
	const unsigned char *in = (const unsigned char *) VARDATA_ANY(sealed);
	size_t		inlen = VARSIZE_ANY_EXHDR(sealed);
	unsigned char subkey[CLERK_KEY_BYTES];
	StringInfoData ad;
	unsigned long long mlen;
	unsigned char *buf;
	int32		key_id;
	int			idx;
	int			rc;

	clerk_keyring_require();

	if (inlen < SEAL_HEADER_BYTES + SEAL_TAG_BYTES ||
		inlen > SEAL_HEADER_BYTES + SEAL_TAG_BYTES + SEAL_MAX_PLAINTEXT ||
		(in[0] != SEAL_FORMAT_VERSION && in[0] != SEAL_FORMAT_NO_ROW_ID))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_cannot_open(row),
				 errdetail("The stored value is not in a format this version of clerk_sync reads.")));

	if (in[0] == SEAL_FORMAT_NO_ROW_ID && !row->legacy)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg_cannot_open(row),
				 errdetail("The value is in clerk_sync 1.0's format, which does not bind it to its row: a copy of it from anywhere would open here."),
				 errhint("Run SELECT clerk_rotate_encryption_key(); once: it re-encrypts such values in the current format.")));

	key_id = (int32) (((uint32) in[1] << 24) | ((uint32) in[2] << 16) |
					  ((uint32) in[3] << 8) | (uint32) in[4]);
	if (key_id != row_key_id)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_cannot_open(row),
				 errdetail("The row records key id %d, but the value was encrypted with key id %d.",
						   row_key_id, key_id)));
	idx = clerk_keyring_index(key_id);
	if (idx < 0)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_NO_KEY),
				 errmsg_cannot_open(row),
				 errdetail("It was encrypted with key id %d, which is not in the loaded key ring.",
						   key_id),
				 errhint("Add key %d back to the key ring and restart the server. Retire a key only after clerk_rotate_encryption_key() has re-encrypted everything under a newer one.",
						 key_id)));

	mlen = inlen - SEAL_HEADER_BYTES - SEAL_TAG_BYTES;
	buf = seal_plaintext_buffer(parent, prefix + mlen + 1);

	seal_associated_data(&ad, in, row);
	clerk_keyring_subkey(idx, row->purpose, subkey);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt(buf + prefix, &mlen, NULL,
													in + SEAL_HEADER_BYTES,
													inlen - SEAL_HEADER_BYTES,
													(unsigned char *) ad.data, ad.len,
													in + SEAL_PREFIX_BYTES,
													subkey);
	sodium_memzero(subkey, sizeof(subkey));
	pfree(ad.data);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg_cannot_open(row),
				 errdetail("The value does not authenticate under key id %d: the key differs from the one that encrypted it, or the value was altered or copied from another row.",
						   key_id),
				 errhint("Check that the server was started with the encryption key that stored the value.")));

	buf[prefix + mlen] = '\0';
	*plen = mlen;
	return buf;
}
