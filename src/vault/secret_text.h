/*
 * secret_text.h
 *		The rule every secret's text keeps: no blank and no control character.
 */
#ifndef CLERK_SECRET_TEXT_H
#define CLERK_SECRET_TEXT_H

/*
 * true if s (len bytes, not NUL-terminated) has a space, a control
 * character or DEL, which no key or token sent in an HTTP header may hold.
 */
extern bool clerk_has_blank_or_control(const char *s, size_t len);

#endif							/* CLERK_SECRET_TEXT_H */
