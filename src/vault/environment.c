/*
 * environment.c
 *		Values taken from the postmaster's environment into locked memory, and wiped where the process got them.
 */
#include "postgres.h"

#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>

#include "vault/environment.h"

/*
 * PostgreSQL moves the environment elsewhere at start (to reuse its memory
 * for the process title), but /proc/<pid>/environ still shows the memory
 * the kernel put it in.  On Linux, find that memory (env_start and env_end
 * in /proc/self/stat) and overwrite the "NAME=..." entry there too.
 */
static void
scrub_original_environ(const char *name)
{
#ifdef __linux__
	FILE	   *f = fopen("/proc/self/stat", "r");
	char		buf[4096];
	size_t		n;
	char	   *p;
	unsigned long start = 0,
				end = 0;
	size_t		namelen = strlen(name);

	if (f == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* fields after the command name, which may hold spaces: state is field 3 */
	p = strrchr(buf, ')');
	if (p == NULL)
		return;
	p++;
	for (int field = 3; field <= 51 && p != NULL; field++)
	{
		while (*p == ' ')
			p++;
		if (field == 50)
			start = strtoul(p, NULL, 10);
		else if (field == 51)
			end = strtoul(p, NULL, 10);
		p = strchr(p, ' ');
	}
	if (start == 0 || end <= start)
		return;
	for (char *e = (char *) start; e < (char *) end;)
	{
		size_t		len = strnlen(e, (char *) end - e);

		if (len > namelen && strncmp(e, name, namelen) == 0 && e[namelen] == '=')
			sodium_memzero(e, len);
		e += len + 1;
	}
#endif
}

char *
clerk_take_env(const char *name)
{
	char	   *v = getenv(name);
	size_t		len;
	char	   *copy;

	if (v == NULL)
		return NULL;
	len = strlen(v);
	copy = sodium_malloc(len + 1);
	if (copy == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	memcpy(copy, v, len + 1);
	unsetenv(name);

	/*
	 * Then the bytes themselves, "NAME=value" (getenv() points into it),
	 * where the process got them:
	 * /proc/<pid>/environ shows that memory, and children forked from here
	 * copy it.
	 */
	if (v[-1] == '=' && strncmp(v - strlen(name) - 1, name, strlen(name)) == 0)
		sodium_memzero(v - strlen(name) - 1, strlen(name) + 1 + len);
	else
		sodium_memzero(v, len);
	scrub_original_environ(name);
	return copy;
}
