/*
 * vault_spi.h
 *		The queries of the credential and stored-secret functions, run over
 *		SPI as the role that writes the clerk tables.
 */
#ifndef CLERK_VAULT_SPI_H
#define CLERK_VAULT_SPI_H

#include "store/role.h"

/* State kept while the queries run. */
typedef struct ClerkVaultSpi
{
	ClerkSavedUser saved;
	MemoryContext caller_cxt;	/* where results for the caller go */
} ClerkVaultSpi;

/*
 * The calling role's name, for created_by and the audit log.  Call it
 * before clerk_vault_begin(), which changes the current user.
 */
extern char *clerk_vault_actor(void);

/*
 * Connect to SPI as the role that writes the clerk tables, with
 * search_path pinned (clerk_become_writer) so that no object of the
 * caller's choosing can stand in for ours; clerk_vault_end() disconnects
 * and restores the caller's role.
 */
extern void clerk_vault_begin(ClerkVaultSpi *spi);
extern void clerk_vault_end(ClerkVaultSpi *spi);

/*
 * Run one statement with parameters (none of them NULL); any result but
 * expected (SPI_OK_*) is a bug.
 */
extern void clerk_vault_exec(const char *sql, int nargs, Oid *types,
							 Datum *values, int expected);

#endif							/* CLERK_VAULT_SPI_H */
