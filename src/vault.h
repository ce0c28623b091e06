/*
 * vault.h
 *		Encrypted credentials: the root key ring, loaded once in the
 *		postmaster, and the secrets stored under it.
 */
#ifndef CLERK_VAULT_H
#define CLERK_VAULT_H

/*
 * Define clerk_sync.encryption_key_command and, when the library is being
 * preloaded, load the key ring in the postmaster.  Called from _PG_init.
 */
extern void clerk_vault_init(void);

/*
 * The Clerk secret key stored with clerk_set_secret_key(), as a palloc'd
 * string, or NULL when none is stored.  Errors when one is stored but cannot
 * be decrypted.  Call inside a transaction, outside SPI; zero the result
 * when done.
 */
extern char *clerk_vault_stored_secret_key(void);

/*
 * Any other secret of clerk_sync's own (such as "webhook_secret"), stored
 * and read the same way.  set with an empty value removes it.
 */
extern char *clerk_vault_get_named_secret(const char *name);
extern void clerk_vault_set_named_secret(const char *name, const char *value);

#endif							/* CLERK_VAULT_H */
