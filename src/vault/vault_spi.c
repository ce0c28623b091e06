/*
 * vault_spi.c
 *		The queries of the credential and stored-secret functions, run over
 *		SPI as the role that writes the clerk tables.
 *
 * The SQL functions run their queries as that role, with search_path
 * pinned, after recording the calling role for the audit log.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"

#include "base/extension.h"
#include "vault/vault_spi.h"

char *
clerk_vault_actor(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

void
clerk_vault_begin(ClerkVaultSpi *spi)
{
	spi->caller_cxt = CurrentMemoryContext;
	clerk_become_writer(&spi->saved, CLERK_SQL_FOR_VAULT);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
clerk_vault_end(ClerkVaultSpi *spi)
{
	SPI_finish();
	clerk_restore_user(&spi->saved);
}

void
clerk_vault_exec(const char *sql, int nargs, Oid *types, Datum *values,
				 int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "clerk_sync: unexpected result %s from \"%s\"",
			 SPI_result_code_string(rc), sql);
}
