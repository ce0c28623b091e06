/*
 * secrets.h
 *		Where the Clerk secret key and the webhook signing secret come from:
 *		the vault, a file named by a setting, or the server's environment.
 */
#ifndef CLERK_SECRETS_H
#define CLERK_SECRETS_H

#include "vault/stored_secrets.h"

/*
 * Define clerk_sync.secret_key_file and clerk_sync.webhook_secret_file (and
 * the removed value settings, which refuse any value); in the postmaster,
 * move CLERK_SECRET_KEY and CLERK_WEBHOOK_SECRET out of the environment into
 * locked memory.  Called from _PG_init.
 */
extern void clerk_secrets_init(void);

/*
 * The secret: stored in the vault, else read from its file setting, else
 * from the server's environment; NULL when none is configured.  palloc'd;
 * callers zero it when done.  A file that is not the server's own, or that
 * others may read, is an error.
 */
extern char *clerk_resolve_secret(ClerkSecret which);

/* The hint for "no secret configured": how to configure one. */
extern const char *clerk_secret_hint(ClerkSecret which);

/* Whether the configuration set the secret's removed 1.0 setting (which then told it what replaces it). */
extern bool clerk_secret_removed_setting_set(ClerkSecret which);

#endif							/* CLERK_SECRETS_H */
