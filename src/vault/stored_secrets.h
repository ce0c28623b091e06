/*
 * stored_secrets.h
 *		The Clerk secret key and the webhook signing secret, stored encrypted
 *		in clerk.secrets.
 */
#ifndef CLERK_STORED_SECRETS_H
#define CLERK_STORED_SECRETS_H

typedef enum ClerkSecret
{
	CLERK_SECRET_API_KEY,		/* the Clerk secret key (sk_...) */
	CLERK_SECRET_WEBHOOK,		/* the endpoint's signing secret (whsec_...) */
	CLERK_NSECRETS
} ClerkSecret;



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
