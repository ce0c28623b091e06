/*
 * settings.c
 *		The settings of syncs and of the HTTP client (clerk_sync.*), and whether the library was preloaded.
 *
 * The vault's settings live in the vault (keyring.c, seal.c, secrets.c)
 * and the webhooks' in webhooks/webhook.c.  Everything here is read by the
 * layers above; nothing here reads them.
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "base/entity.h"
#include "base/settings.h"
#include "base/url.h"

char	   *clerk_sync_api_url = NULL;
int			clerk_sync_page_size = 100;
int			clerk_sync_request_timeout = 30000;
int			clerk_sync_max_retries = 5;
int			clerk_sync_retry_backoff = 500;
int			clerk_sync_rate_limit = 100;
int			clerk_sync_concurrency = 4;
int			clerk_sync_log_retention = 30 * 24 * 60;
int			clerk_sync_change_retention = 30 * 24 * 60;
int			clerk_sync_credential_audit_retention = 0;
int			clerk_sync_session_retention = 90 * 24 * 60;
int			clerk_sync_worker_start_timeout = 10000;
int			clerk_sync_incremental_overlap = 300;
double		clerk_sync_max_delete_fraction = 0.1;
char	   *clerk_sync_entities_setting = NULL;
int			clerk_sync_entities = CLERK_OPTIONAL_ENTITIES;
bool		clerk_sync_preloaded = false;
char	   *clerk_sync_proxy = NULL;

void
clerk_require_preload(const char *what)
{
	if (!clerk_sync_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("clerk_sync must be loaded via shared_preload_libraries"),
				 errdetail("%s needs shared memory and background workers, which only a preloaded library has.", what),
				 errhint("Add clerk_sync to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Only http and https URLs, without credentials in them, are accepted. */
static bool
check_api_url(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	ClerkUrlCheck check;

	if (v == NULL)
		return true;
	check = clerk_url_check(v, strlen(v));
	if (check == CLERK_URL_BAD_SCHEME)
	{
		GUC_check_errdetail("The Clerk API URL must start with https:// or http://.");
		return false;
	}
	if (check == CLERK_URL_NO_HOST || strlen(v) >= CLERK_MAX_URL_LEN)
	{
		GUC_check_errdetail("The Clerk API URL must name a host and be shorter than %d bytes.",
							CLERK_MAX_URL_LEN);
		return false;
	}
	if (check == CLERK_URL_CREDENTIALS)
	{
		/* say what is wrong without repeating the value, which holds a secret */
		GUC_check_errmsg("the Clerk API URL must not carry credentials");
		GUC_check_errdetail("Credentials in clerk_sync.api_url would show wherever the setting does.");
		GUC_check_errhint("Put the key in a file named by clerk_sync.secret_key_file, or store it with clerk_set_secret_key().");
		return false;
	}
	return true;
}

/*
 * clerk_sync.proxy: empty (no proxy, whatever the server's environment
 * says), or an http(s) URL of a proxy without credentials.
 */
static bool
check_proxy(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	ClerkUrlCheck check;

	if (v == NULL || v[0] == '\0')
		return true;
	check = clerk_url_check(v, strlen(v));
	if (check == CLERK_URL_CREDENTIALS)
	{
		GUC_check_errmsg("the proxy URL must not carry credentials");
		GUC_check_errdetail("Credentials in clerk_sync.proxy would show wherever the setting does.");
		return false;
	}
	if (check != CLERK_URL_OK || strlen(v) >= CLERK_MAX_URL_LEN)
	{
		GUC_check_errdetail("clerk_sync.proxy must be empty or an http:// or https:// URL that names a host, shorter than %d bytes.",
							CLERK_MAX_URL_LEN);
		return false;
	}
	return true;
}

/*
 * clerk_sync.entities: "all", "none", or a comma-separated list of the
 * optional entities (users, organizations and memberships are always
 * synced, and may be named too); the set goes to extra as a bit mask.
 */
static bool
check_entities(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	int			mask = 0;
	int		   *result;

	if (*newval == NULL || pg_strcasecmp(*newval, "all") == 0)
		mask = CLERK_OPTIONAL_ENTITIES;
	else if (pg_strcasecmp(*newval, "none") != 0)
	{
		copy = pstrdup(*newval);
		if (!SplitIdentifierString(copy, ',', &names))
		{
			GUC_check_errdetail("The list of entities is not a comma-separated list of names.");
			return false;
		}
		foreach(lc, names)
		{
			ClerkEntity e;

			if (!clerk_entity_by_name((const char *) lfirst(lc), &e) || e == CLERK_SESSIONS)
			{
				GUC_check_errdetail("\"%s\" is not an entity clerk_sync lists.", (const char *) lfirst(lc));
				GUC_check_errhint("Name some of organization_invitations, invitations, organization_domains, roles, permissions, billing_plans, billing_prices, billing_subscription_items, billing_statements, billing_payment_attempts and waitlist_entries, or write all or none.");
				return false;
			}
			mask |= CLERK_ENTITY_BIT(e) & CLERK_OPTIONAL_ENTITIES;
		}
	}
	result = (int *) malloc(sizeof(int));	/* the GUC machinery frees it */
	if (result == NULL)
		return false;
	*result = mask;
	*extra = result;
	return true;
}

static void
assign_entities(const char *newval, void *extra)
{
	clerk_sync_entities = *(int *) extra;
}

/*
 * rate_limit and concurrency: the server's configuration sets a ceiling
 * that only a superuser may raise; any session may go lower.
 */
static int	rate_limit_ceiling = INT_MAX;
static int	concurrency_ceiling = INT_MAX;

static bool
check_ceiling(int *newval, GucSource source, int *ceiling, const char *name)
{
	/* the server's own configuration (file, command line) sets the ceiling */
	if (source <= PGC_S_ARGV)
	{
		*ceiling = *newval;
		return true;
	}
	if (!IsUnderPostmaster || !OidIsValid(GetUserId()))
		return true;
	if (*newval > *ceiling && !superuser())
	{
		GUC_check_errmsg("only a superuser may raise %s above %d", name, *ceiling);
		GUC_check_errdetail("The Clerk instance's rate limit is shared with the production application; the server's configuration sets how much of it a sync may use.");
		GUC_check_errhint("Use a value of at most %d, or ask a superuser to raise it in postgresql.conf.", *ceiling);
		return false;
	}
	return true;
}

static double max_delete_fraction_ceiling = 1.0;

static bool
check_max_delete_fraction(double *newval, void **extra, GucSource source)
{
	if (source <= PGC_S_ARGV)
	{
		max_delete_fraction_ceiling = *newval;
		return true;
	}
	if (!IsUnderPostmaster || !OidIsValid(GetUserId()))
		return true;
	if (*newval > max_delete_fraction_ceiling && !superuser())
	{
		GUC_check_errmsg("only a superuser may raise clerk_sync.max_delete_fraction above %g",
						 max_delete_fraction_ceiling);
		GUC_check_errdetail("The limit guards against mass deletion; the server's configuration sets it.");
		GUC_check_errhint("Use a value of at most %g, or ask a superuser to raise it in postgresql.conf.",
						  max_delete_fraction_ceiling);
		return false;
	}
	return true;
}

static bool
check_rate_limit(int *newval, void **extra, GucSource source)
{
	return check_ceiling(newval, source, &rate_limit_ceiling, "clerk_sync.rate_limit");
}

static bool
check_concurrency(int *newval, void **extra, GucSource source)
{
	return check_ceiling(newval, source, &concurrency_ceiling, "clerk_sync.concurrency");
}

void
clerk_settings_init(void)
{
	clerk_sync_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomStringVariable("clerk_sync.api_url",
							   "Base URL of the Clerk Backend API.",
							   "Requests go to this URL followed by the endpoint path, such as /users.",
							   &clerk_sync_api_url,
							   "https://api.clerk.com/v1",
							   PGC_SUSET,
							   0,
							   check_api_url, NULL, NULL);

	DefineCustomStringVariable("clerk_sync.proxy",
							   "HTTP proxy for requests to the Clerk API; empty for none.",
							   "The proxy variables of the server's environment (http_proxy, HTTPS_PROXY, ALL_PROXY) are never used.",
							   &clerk_sync_proxy,
							   "",
							   PGC_SUSET,
							   0,
							   check_proxy, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.page_size",
							"Number of objects requested per page.",
							"Clerk accepts at most 500.",
							&clerk_sync_page_size,
							100, 1, 500,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.request_timeout",
							"Time limit of one HTTP request to Clerk.",
							NULL,
							&clerk_sync_request_timeout,
							30000, 100, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.max_retries",
							"How often a failed request is retried before the run fails.",
							"Applies to 429, 5xx, timeouts and dropped connections.",
							&clerk_sync_max_retries,
							5, 0, 100,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.retry_backoff",
							"First delay of the exponential backoff between retries.",
							"Each further retry doubles it, with random jitter, up to 30 seconds.",
							&clerk_sync_retry_backoff,
							500, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.rate_limit",
							"Most requests sent to Clerk in any 10 seconds.",
							"Clerk allows 100 for development instances and 1000 for production instances.",
							&clerk_sync_rate_limit,
							100, 1, 100000,
							PGC_USERSET, 0,
							check_rate_limit, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.concurrency",
							"Most requests a sync keeps in flight.",
							"The sync adapts below it: it grows while answers come back fast, up to what fills clerk_sync.rate_limit, and backs off on 429 answers and rising latency.",
							&clerk_sync_concurrency,
							16, 1, 32,
							PGC_USERSET, 0,
							check_concurrency, NULL, NULL);

	DefineCustomStringVariable("clerk_sync.entities",
							   "Which of the optional entities a sync lists.",
							   "all (the default), none, or a list of organization_invitations, invitations, organization_domains, roles, permissions, billing_plans, billing_prices, billing_subscription_items, billing_statements, billing_payment_attempts and waitlist_entries. Users, organizations and memberships are always listed; an entity the instance's plan does not have is skipped with a notice.",
							   &clerk_sync_entities_setting,
							   "all",
							   PGC_USERSET, GUC_LIST_INPUT,
							   check_entities, assign_entities, NULL);

	DefineCustomRealVariable("clerk_sync.max_delete_fraction",
							 "Largest fraction of a table one sync may soft-delete.",
							 "When more rows than this would be deleted, the run deletes nothing and says why.",
							 &clerk_sync_max_delete_fraction,
							 0.1, 0.0, 1.0,
							 PGC_USERSET, 0,
							 check_max_delete_fraction, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.worker_start_timeout",
							"How long a caller waits for a run's background worker to start.",
							"A worker not running by then is stopped and its run slot given back; the call fails.",
							&clerk_sync_worker_start_timeout,
							10000, 0, 600 * 1000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.credential_audit_retention",
							"How long audit rows of credential reads, stores and rotations are kept.",
							"Pruned when a run starts. 0, the default, keeps them forever.",
							&clerk_sync_credential_audit_retention,
							0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.log_retention",
							"How long sync runs and their audit log rows are kept.",
							"Older rows are pruned when a run starts (audit rows of credentials and secrets have their own setting). 0 keeps them forever.",
							&clerk_sync_log_retention,
							30 * 24 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.change_retention",
							"How long finished changes to Clerk (sent, failed or canceled) are kept in clerk.changes.",
							"Older ones are pruned by the write-back worker. 0 keeps them forever; pending changes are never pruned.",
							&clerk_sync_change_retention,
							30 * 24 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.session_retention",
							"How long the login history in clerk.sessions is kept.",
							"Sessions that ended (or were last active) longer ago are deleted as session events arrive and after clerk_sync_sessions(). 0 keeps them forever.",
							&clerk_sync_session_retention,
							90 * 24 * 60, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("clerk_sync.incremental_overlap",
							"How far before the last run's newest change clerk_sync_changes() looks again.",
							"Offset paging over a changing set can skip objects; the overlap fetches them on the next run.",
							&clerk_sync_incremental_overlap,
							300, 0, 7 * 24 * 3600,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}
