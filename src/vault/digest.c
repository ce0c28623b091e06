/*
 * digest.c
 *		clerk_digest() and clerk_hmac(): SHA-256 and SHA-512 digests and
 *		HMACs computed with libsodium.
 *
 * They follow pgcrypto's digest() and hmac(): same arguments, bytea out,
 * STRICT, and byte-identical results, so code written against pgcrypto
 * can switch without re-hashing stored values.  Only the two algorithms
 * libsodium implements are offered.
 */
#include "postgres.h"

#include <sodium.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "base/compat.h"

PG_FUNCTION_INFO_V1(clerk_digest);
PG_FUNCTION_INFO_V1(clerk_hmac);

typedef enum DigestAlgorithm
{
	DIGEST_SHA256,
	DIGEST_SHA512
} DigestAlgorithm;

/*
 * Map pgcrypto's algorithm name to ours.  pgcrypto looks names up without
 * regard to case, so "SHA256" is accepted as well.
 */
static DigestAlgorithm
digest_algorithm(text *name)
{
	char	   *s = text_to_cstring(name);
	DigestAlgorithm result;

	if (pg_strcasecmp(s, "sha256") == 0)
		result = DIGEST_SHA256;
	else if (pg_strcasecmp(s, "sha512") == 0)
		result = DIGEST_SHA512;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported hash algorithm \"%s\"", s),
				 errhint("Use sha256 or sha512.")));
	pfree(s);
	return result;
}

/*
 * clerk_digest(data bytea, type text) RETURNS bytea
 *
 * Also bound to clerk_digest(text, text): text and bytea share one
 * representation, and the text's bytes are hashed as they are.
 */
Datum
clerk_digest(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	DigestAlgorithm alg = digest_algorithm(PG_GETARG_TEXT_PP(1));
	const unsigned char *in = (const unsigned char *) VARDATA_ANY(data);
	size_t		inlen = VARSIZE_ANY_EXHDR(data);
	bytea	   *result;

	if (alg == DIGEST_SHA256)
	{
		result = (bytea *) palloc(VARHDRSZ + crypto_hash_sha256_BYTES);
		SET_VARSIZE(result, VARHDRSZ + crypto_hash_sha256_BYTES);
		crypto_hash_sha256((unsigned char *) VARDATA(result), in, inlen);
	}
	else
	{
		result = (bytea *) palloc(VARHDRSZ + crypto_hash_sha512_BYTES);
		SET_VARSIZE(result, VARHDRSZ + crypto_hash_sha512_BYTES);
		crypto_hash_sha512((unsigned char *) VARDATA(result), in, inlen);
	}

	PG_FREE_IF_COPY(data, 0);
	PG_RETURN_BYTEA_P(result);
}

/*
 * clerk_hmac(data bytea, key bytea, type text) RETURNS bytea
 *
 * Keys of any length are accepted, as RFC 2104 (and pgcrypto) allows: keys
 * longer than the hash's block are hashed first, shorter ones zero-padded.
 * libsodium's streaming HMAC interface does exactly that.
 */
Datum
clerk_hmac(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	bytea	   *key = PG_GETARG_BYTEA_PP(1);
	DigestAlgorithm alg = digest_algorithm(PG_GETARG_TEXT_PP(2));
	const unsigned char *in = (const unsigned char *) VARDATA_ANY(data);
	size_t		inlen = VARSIZE_ANY_EXHDR(data);
	const unsigned char *k = (const unsigned char *) VARDATA_ANY(key);
	size_t		klen = VARSIZE_ANY_EXHDR(key);
	bytea	   *result;

	if (alg == DIGEST_SHA256)
	{
		crypto_auth_hmacsha256_state st;

		result = (bytea *) palloc(VARHDRSZ + crypto_auth_hmacsha256_BYTES);
		SET_VARSIZE(result, VARHDRSZ + crypto_auth_hmacsha256_BYTES);
		crypto_auth_hmacsha256_init(&st, k, klen);
		crypto_auth_hmacsha256_update(&st, in, inlen);
		crypto_auth_hmacsha256_final(&st, (unsigned char *) VARDATA(result));
		sodium_memzero(&st, sizeof(st));
	}
	else
	{
		crypto_auth_hmacsha512_state st;

		result = (bytea *) palloc(VARHDRSZ + crypto_auth_hmacsha512_BYTES);
		SET_VARSIZE(result, VARHDRSZ + crypto_auth_hmacsha512_BYTES);
		crypto_auth_hmacsha512_init(&st, k, klen);
		crypto_auth_hmacsha512_update(&st, in, inlen);
		crypto_auth_hmacsha512_final(&st, (unsigned char *) VARDATA(result));
		sodium_memzero(&st, sizeof(st));
	}

	PG_FREE_IF_COPY(data, 0);
	PG_FREE_IF_COPY(key, 1);
	PG_RETURN_BYTEA_P(result);
}
