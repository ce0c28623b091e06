/*
 * reader_query.c
 *		The row-level security helpers' one kind of query: a saved plan of one text argument, run as the reader.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "base/extension.h"
#include "rls/reader_query.h"
#include "store/role.h"

void
clerk_reader_query(SPIPlanPtr *plan, const char *sql, const char *arg,
				   void (*read) (void *read_arg), void *read_arg)
{
	ClerkSavedUser saved;
	Datum		value = CStringGetTextDatum(arg);

	clerk_become_reader(&saved, CLERK_SQL_FOR_RLS);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (*plan == NULL)
	{
		Oid			types[1] = {TEXTOID};
		SPIPlanPtr	p = SPI_prepare(sql, 1, types);

		if (p == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	if (SPI_execute_plan(*plan, &value, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not run \"%s\"", sql);
	read(read_arg);
	SPI_finish();
	clerk_restore_user(&saved);
}
