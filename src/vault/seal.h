/*
 * seal.h
 *		Sealing values under the newest root key, and opening them again.
 */
#ifndef CLERK_SEAL_H
#define CLERK_SEAL_H

/*
 * What a value is sealed for.  Each purpose has a subkey of its own (the
 * number is its subkey id), so a value sealed for one never opens as
 * another.
 */
typedef enum ClerkSealPurpose
{
	CLERK_SEAL_CREDENTIALS = 1,	/* a row of clerk.api_credentials */
	CLERK_SEAL_SECRET = 2		/* a row of clerk.secrets */
} ClerkSealPurpose;

/* The name of the stored Clerk secret key's row in clerk.secrets. */
#define CLERK_SECRET_KEY_ROW "clerk_secret_key"

/*
 * The row a sealed value belongs to, and its state.  They are bound as
 * associated data, so the value opens only for the same row in the same
 * state: for credentials, scope is the organization id, name the service,
 * id the row's id (each store makes a new row) and inactive whether the row
 * was deactivated (deactivation re-seals the value), so that neither a
 * value copied from another row nor a deactivated row made active again
 * opens; for a stored secret, scope is empty, name is the secret's, id is
 * 0 and inactive false.  Messages name the row, never the value.
 *
 * legacy: the value may be in 1.0's format, which binds neither the row id
 * nor the state; only clerk_rotate_encryption_key() (and the update from
 * 1.0, which calls it) opens such values, to re-seal them.
 */
typedef struct ClerkSealedRow
{
	ClerkSealPurpose purpose;
	const char *scope;
	const char *name;
	int64		id;
	bool		inactive;
	bool		legacy;
} ClerkSealedRow;

/* Define the vault's test setting (clerk_sync.seal_format); from _PG_init. */
extern void clerk_seal_init(void);

/*
 * Seal plen bytes of plain for row under the newest key.  Returns the
 * value to store; *key_id is the key id to record next to it.
 */
extern bytea *clerk_seal(const ClerkSealedRow *row, const unsigned char *plain,
						 size_t plen, int32 *key_id);

/*
 * Open a value sealed by clerk_seal() for the same row; row_key_id is the
 * key id recorded next to it.  Returns the plaintext after prefix spare
 * bytes (room for a varlena header), followed by a NUL; *plen is its
 * length.  It lives in a new child of parent and is zeroed when that
 * context is reset or deleted.  A value that does not open is an error.
 */
extern unsigned char *clerk_open_sealed(const ClerkSealedRow *row, bytea *sealed,
										int32 row_key_id, size_t prefix,
										MemoryContext parent, size_t *plen);

#endif							/* CLERK_SEAL_H */
