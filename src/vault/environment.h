/*
 * environment.h
 *		Values taken from the postmaster's environment into locked memory, and wiped where the process got them.
 */
#ifndef CLERK_ENVIRONMENT_H
#define CLERK_ENVIRONMENT_H

/*
 * The value of environment variable name in memory of libsodium's (locked,
 * never in a core dump), or NULL; the variable is removed from the
 * environment and its bytes are overwritten where the process got them.
 */
extern char *clerk_take_env(const char *name);

#endif							/* CLERK_ENVIRONMENT_H */
