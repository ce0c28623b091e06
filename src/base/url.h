/*
 * url.h
 *		Whether a text is an http or https URL that names a host and carries no credentials.
 */
#ifndef CLERK_URL_H
#define CLERK_URL_H

typedef enum ClerkUrlCheck
{
	CLERK_URL_OK,
	CLERK_URL_BAD_SCHEME,		/* neither https:// nor http:// */
	CLERK_URL_NO_HOST,			/* nothing between the scheme and the path */
	CLERK_URL_CREDENTIALS		/* a user name or password before the host */
} ClerkUrlCheck;

/* Check the len bytes at s (the callers check lengths and characters). */
extern ClerkUrlCheck clerk_url_check(const char *s, size_t len);

#endif							/* CLERK_URL_H */
