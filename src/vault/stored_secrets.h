/*
 * stored_secrets.h
 *		The Clerk secret key and the webhook signing secret, stored encrypted
 *		in clerk.secrets.
 */
#ifndef CLERK_STORED_SECRETS_H
#define CLERK_STORED_SECRETS_H

#include "secrets.h"

/* The name of the Clerk secret key's row in clerk.secrets */
#define CLERK_SECRET_KEY_ROW "clerk_secret_key"

/*
 * The stored secret, as a palloc'd string, or NULL when none is stored (or
 * the database does not have the extension).  Errors when one is stored
 * but cannot be decrypted.  Call inside a transaction, outside SPI; zero
 * the result when done.
 */
extern char *clerk_stored_secret(ClerkSecret which);

/*
 * Store the secret (len bytes of value) encrypted, replacing any stored
 * one, or with len 0 remove it; either is audited.
 */
extern void clerk_store_secret(ClerkSecret which, const char *value, size_t len);

#endif							/* CLERK_STORED_SECRETS_H */
