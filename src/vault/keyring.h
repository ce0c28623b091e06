/*
 * keyring.h
 *		The root key ring: loaded once in the postmaster, kept in protected
 *		memory, and the source of one subkey per purpose.
 */
#ifndef CLERK_KEYRING_H
#define CLERK_KEYRING_H

/* Size of a root key and of each subkey derived from it */
#define CLERK_KEY_BYTES			32

/* Most keys a ring holds */
#define CLERK_KEYRING_MAX_KEYS	64

/*
 * Initialize libsodium; when the library is being preloaded, also define
 * clerk_sync.encryption_key_command and load the key ring in the
 * postmaster.  Called from _PG_init, before anything else uses libsodium.
 */
extern void clerk_keyring_init(void);

/* Error, saying why and what to do, unless a key ring is loaded. */
extern void clerk_keyring_require(void);

/*
 * The entries of the ring, 0 to clerk_keyring_size() - 1 (no entry when no
 * ring is loaded), in the order the ring lists them.
 */
extern int	clerk_keyring_size(void);

/* The key id of entry idx. */
extern int32 clerk_keyring_id(int idx);

/* The entry of key_id, or -1 when the ring does not hold it. */
extern int	clerk_keyring_index(int32 key_id);

/* The entry with the highest key id, which seals new values. */
extern int	clerk_keyring_newest(void);

/*
 * Derive the subkey (CLERK_KEY_BYTES) for subkey_id from entry idx.  The
 * root keys are readable only while this runs.
 */
extern void clerk_keyring_subkey(int idx, uint64 subkey_id, unsigned char *subkey);

#endif							/* CLERK_KEYRING_H */
