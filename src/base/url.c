/*
 * url.c
 *		Whether a text is an http or https URL that names a host and carries no credentials.
 */
#include "postgres.h"

#include "base/url.h"

ClerkUrlCheck
clerk_url_check(const char *s, size_t len)
{
	size_t		rest;
	size_t		authority;

	if (len > 8 && strncmp(s, "https://", 8) == 0)
		rest = 8;
	else if (len > 7 && strncmp(s, "http://", 7) == 0)
		rest = 7;
	else if ((len == 8 && strncmp(s, "https://", 8) == 0) ||
			 (len == 7 && strncmp(s, "http://", 7) == 0))
		return CLERK_URL_NO_HOST;
	else
		return CLERK_URL_BAD_SCHEME;
	for (authority = rest; authority < len; authority++)
		if (s[authority] == '/' || s[authority] == '?' || s[authority] == '#')
			break;
	if (authority == rest)
		return CLERK_URL_NO_HOST;
	if (memchr(s + rest, '@', authority - rest) != NULL)
		return CLERK_URL_CREDENTIALS;
	return CLERK_URL_OK;
}
