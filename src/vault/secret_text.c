/*
 * secret_text.c
 *		The rule every secret's text keeps: no blank and no control character.
 */
#include "postgres.h"

#include "vault/secret_text.h"

bool
clerk_has_blank_or_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c <= ' ' || c == 0x7f)
			return true;
	}
	return false;
}
