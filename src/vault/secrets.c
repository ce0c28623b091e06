/*
 * secrets.c
 *		Where the Clerk secret key and the webhook signing secret come from:
 *		the vault, a file named by a setting, or the server's environment.
 *
 * No setting holds a secret's value: a setting is readable by every member
 * of pg_read_all_settings, logged when it changes, kept by
 * pg_stat_statements when set with ALTER SYSTEM, and copied into every base
 * backup.  The 1.0 settings clerk_sync.secret_key and
 * clerk_sync.webhook_secret still exist, so that a configuration that sets
 * them is told, without its value being repeated anywhere, what replaces
 * them; they take no value.
 */
#include "postgres.h"

#include <fcntl.h>
#include <stdio.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "base/settings.h"
#include "vault/environment.h"
#include "vault/secret_text.h"
#include "vault/secrets.h"
#include "vault/stored_secrets.h"

typedef struct SecretSource
{
	const char *removed;		/* the 1.0 value setting */
	const char *file_setting;
	const char *env;
	const char *setter;			/* the vault's SQL setter */
	char	   *file;			/* clerk_sync.*_file */
	char	   *removed_value;	/* always empty */
	char	   *from_env;		/* the environment's value, in locked memory */
	bool		removed_seen;	/* a removed setting was configured */
} SecretSource;

static SecretSource sources[CLERK_NSECRETS] = {
	{.removed = "clerk_sync.secret_key", .file_setting = "clerk_sync.secret_key_file",
	.env = "CLERK_SECRET_KEY", .setter = "clerk_set_secret_key()"},
	{.removed = "clerk_sync.webhook_secret", .file_setting = "clerk_sync.webhook_secret_file",
	.env = "CLERK_WEBHOOK_SECRET", .setter = "clerk_set_webhook_secret()"},
};

/* Longest secret file read */
#define SECRET_FILE_MAX 4096

/*
 * A removed setting takes no value.  The message never repeats the value;
 * PostgreSQL then neither stores nor logs it.
 */
static bool
check_removed(char **newval, void **extra, GucSource source, ClerkSecret which)
{
	SecretSource *s = &sources[which];

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	s->removed_seen = true;
	GUC_check_errmsg("%s is no longer a setting", s->removed);
	GUC_check_errdetail("Since clerk_sync 1.1 no setting holds a secret: settings are readable by pg_read_all_settings, logged when they change and copied into base backups.");
	GUC_check_errhint("Remove it, and put the secret in a file named by %s, or store it with %s.",
					  s->file_setting, s->setter);
	return false;
}

static bool
check_removed_key(char **newval, void **extra, GucSource source)
{
	return check_removed(newval, extra, source, CLERK_SECRET_API_KEY);
}

static bool
check_removed_webhook(char **newval, void **extra, GucSource source)
{
	return check_removed(newval, extra, source, CLERK_SECRET_WEBHOOK);
}


void
clerk_secrets_init(void)
{
	DefineCustomStringVariable("clerk_sync.secret_key",
							   "Removed in clerk_sync 1.1: use clerk_sync.secret_key_file or clerk_set_secret_key().",
							   NULL,
							   &sources[CLERK_SECRET_API_KEY].removed_value,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_removed_key, NULL, NULL);
	DefineCustomStringVariable("clerk_sync.webhook_secret",
							   "Removed in clerk_sync 1.1: use clerk_sync.webhook_secret_file or clerk_set_webhook_secret().",
							   NULL,
							   &sources[CLERK_SECRET_WEBHOOK].removed_value,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_removed_webhook, NULL, NULL);
	DefineCustomStringVariable("clerk_sync.secret_key_file",
							   "File that holds the Clerk secret key.",
							   "Read when the key is needed; it must belong to the server's user and be readable by no one else. A key stored with clerk_set_secret_key() wins.",
							   &sources[CLERK_SECRET_API_KEY].file,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("clerk_sync.webhook_secret_file",
							   "File that holds the webhook signing secret.",
							   "Read when a webhook arrives; it must belong to the server's user and be readable by no one else. A secret stored with clerk_set_webhook_secret() wins.",
							   &sources[CLERK_SECRET_WEBHOOK].file,
							   "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/* the postmaster takes the environment's secrets before it starts anything */
	if (process_shared_preload_libraries_in_progress)
		for (int i = 0; i < CLERK_NSECRETS; i++)
			sources[i].from_env = clerk_take_env(sources[i].env);
}

/* The secret in `path`, checked: the server's own file, readable by it alone. */
static char *
read_secret_file(const SecretSource *s)
{
	const char *path = s->file;
	int			fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char	   *buf;
	ssize_t		n;
	size_t		len;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open %s \"%s\": %m", s->file_setting, path)));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" is not a regular file", s->file_setting, path)));
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("%s \"%s\" has unsafe ownership or permissions", s->file_setting, path),
				 errdetail("A secret file must belong to the database server's user and give no rights to its group or others."),
				 errhint("Run chown postgres and chmod 600 on it (or 400).")));
	}
	buf = palloc(SECRET_FILE_MAX + 1);
	n = read(fd, buf, SECRET_FILE_MAX + 1);
	close(fd);
	if (n < 0 || n > SECRET_FILE_MAX)
	{
		explicit_bzero(buf, SECRET_FILE_MAX + 1);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("could not read %s \"%s\"", s->file_setting, path),
				 errdetail("The file must hold the secret alone, at most %d bytes.", SECRET_FILE_MAX)));
	}
	len = (size_t) n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if (len == 0)
	{
		pfree(buf);
		return NULL;
	}
	return buf;
}

char *
clerk_resolve_secret(ClerkSecret which)
{
	SecretSource *s = &sources[which];
	char	   *v;

	v = clerk_stored_secret(which);
	if (v != NULL && v[0] != '\0')
		return v;
	if (s->file != NULL && s->file[0] != '\0' && (v = read_secret_file(s)) != NULL)
		return v;
	if (s->from_env != NULL && s->from_env[0] != '\0')
		return pstrdup(s->from_env);
	/* a library loaded without shared_preload_libraries reads the environment itself */
	if (!clerk_sync_preloaded && (v = getenv(s->env)) != NULL && v[0] != '\0')
		return pstrdup(v);
	return NULL;
}


const char *
clerk_secret_hint(ClerkSecret which)
{
	SecretSource *s = &sources[which];

	if (s->removed_seen)
		return psprintf("%s is no longer read: name a file with %s, call %s, or set %s in the server's environment.",
						s->removed, s->file_setting, s->setter, s->env);
	return psprintf("Name a file with %s, call %s, or set %s in the server's environment.",
					s->file_setting, s->setter, s->env);
}

bool
clerk_secret_removed_setting_set(ClerkSecret which)
{
	return sources[which].removed_seen;
}

PG_FUNCTION_INFO_V1(clerk_secret_key_configured);

/*
 * clerk_secret_key_configured() returns boolean: is there a key to use?
 * (The key itself is never returned.)
 */
Datum
clerk_secret_key_configured(PG_FUNCTION_ARGS)
{
	char	   *key = clerk_resolve_secret(CLERK_SECRET_API_KEY);

	if (key == NULL)
		PG_RETURN_BOOL(false);
	explicit_bzero(key, strlen(key));
	PG_RETURN_BOOL(true);
}
