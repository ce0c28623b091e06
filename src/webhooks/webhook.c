/*
 * webhook.c
 *		Clerk webhooks: Svix signature verification and event dispatch.
 *
 * clerk_handle_webhook() takes what an HTTP endpoint received from Clerk
 * (the raw body and the svix-id, svix-timestamp and svix-signature
 * headers), verifies it the way Svix's own libraries do, records the
 * delivery id so that a retried delivery is applied once, and writes the
 * event's object through the same mapping and upsert as the sync
 * (store.c), which also keeps late or reordered events from overwriting
 * newer data.  Nothing is read from the body, and nothing is written,
 * before the signature has been checked.
 */
#include "postgres.h"

#include <ctype.h>
#include <sodium.h>

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/extension.h"
#include "base/settings.h"
#include "base/subtransaction.h"
#include "clerk/json_members.h"
#include "clerk/parse.h"
#include "store/role.h"
#include "store/store.h"
#include "vault/secrets.h"
#include "vault/stored_secrets.h"
#include "webhooks/webhook.h"

PG_FUNCTION_INFO_V1(clerk_handle_webhook);
PG_FUNCTION_INFO_V1(clerk_set_webhook_secret);

#define WHSEC_PREFIX "whsec_"
#define WHSEC_PREFIX_LEN 6
#define WEBHOOK_SECRET_MAX_LEN 1024
/* Svix's signing secrets are 24 to 64 bytes; a shorter key is refused */
#define WEBHOOK_KEY_MIN_BYTES 24
#define WEBHOOK_PRUNE_BATCH 100

/* Settings */
static char *clerk_sync_webhook_now = NULL;

/* clerk_sync.webhook_max_body: the largest body verified, in bytes */
static int	clerk_sync_webhook_max_body = 1024 * 1024;

/* What an event type does. */
typedef enum WebhookAction
{
	WEBHOOK_UPSERT,				/* data is the object as it is now */
	WEBHOOK_DELETE				/* data is the deleted object (or just its id) */
} WebhookAction;

typedef struct WebhookEventType
{
	const char *type;
	ClerkEntity entity;
	WebhookAction action;
} WebhookEventType;

static const WebhookEventType webhook_event_types[] = {
	{"user.created", CLERK_USERS, WEBHOOK_UPSERT},
	{"user.updated", CLERK_USERS, WEBHOOK_UPSERT},
	{"user.deleted", CLERK_USERS, WEBHOOK_DELETE},
	{"organization.created", CLERK_ORGANIZATIONS, WEBHOOK_UPSERT},
	{"organization.updated", CLERK_ORGANIZATIONS, WEBHOOK_UPSERT},
	{"organization.deleted", CLERK_ORGANIZATIONS, WEBHOOK_DELETE},
	{"organizationMembership.created", CLERK_MEMBERSHIPS, WEBHOOK_UPSERT},
	{"organizationMembership.updated", CLERK_MEMBERSHIPS, WEBHOOK_UPSERT},
	{"organizationMembership.deleted", CLERK_MEMBERSHIPS, WEBHOOK_DELETE},
	{"organizationInvitation.created", CLERK_ORG_INVITATIONS, WEBHOOK_UPSERT},
	{"organizationInvitation.accepted", CLERK_ORG_INVITATIONS, WEBHOOK_UPSERT},
	{"organizationInvitation.revoked", CLERK_ORG_INVITATIONS, WEBHOOK_UPSERT},
	{"organizationDomain.created", CLERK_ORG_DOMAINS, WEBHOOK_UPSERT},
	{"organizationDomain.updated", CLERK_ORG_DOMAINS, WEBHOOK_UPSERT},
	{"organizationDomain.deleted", CLERK_ORG_DOMAINS, WEBHOOK_DELETE},
	{"role.created", CLERK_ROLES, WEBHOOK_UPSERT},
	{"role.updated", CLERK_ROLES, WEBHOOK_UPSERT},
	{"role.deleted", CLERK_ROLES, WEBHOOK_DELETE},
	{"permission.created", CLERK_PERMISSIONS, WEBHOOK_UPSERT},
	{"permission.updated", CLERK_PERMISSIONS, WEBHOOK_UPSERT},
	{"permission.deleted", CLERK_PERMISSIONS, WEBHOOK_DELETE},
	{"session.created", CLERK_SESSIONS, WEBHOOK_UPSERT},
	{"session.pending", CLERK_SESSIONS, WEBHOOK_UPSERT},
	{"session.ended", CLERK_SESSIONS, WEBHOOK_UPSERT},
	{"session.removed", CLERK_SESSIONS, WEBHOOK_UPSERT},
	{"session.revoked", CLERK_SESSIONS, WEBHOOK_UPSERT},
	/* a subscription's data: its items (the mapping makes a row of each) */
	{"subscription.created", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscription.updated", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscription.active", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscription.pastDue", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.created", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.updated", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.active", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.canceled", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.upcoming", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.ended", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.abandoned", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.incomplete", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.pastDue", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"subscriptionItem.freeTrialEnding", CLERK_SUBSCRIPTION_ITEMS, WEBHOOK_UPSERT},
	{"paymentAttempt.created", CLERK_PAYMENT_ATTEMPTS, WEBHOOK_UPSERT},
	{"paymentAttempt.updated", CLERK_PAYMENT_ATTEMPTS, WEBHOOK_UPSERT},
	{"waitlistEntry.created", CLERK_WAITLIST, WEBHOOK_UPSERT},
	{"waitlistEntry.updated", CLERK_WAITLIST, WEBHOOK_UPSERT},
};

/* One parsed event. */
typedef struct WebhookEvent
{
	char	   *type;
	const WebhookEventType *known;	/* NULL for types clerk_sync ignores */
	Jsonb	   *data;			/* the "data" object, if there is one */
	char	   *object_id;
	char	   *organization_id;
	int64		timestamp_ms;	/* when Clerk says it happened; 0 if unknown */
	const char *unstorable;		/* why the body's object cannot be stored, or NULL */
	const char *repairs;		/* {"fields": [...], "rules": [...]} of the repair, or NULL */
} WebhookEvent;

/* Saved plans, made on first use. */
static SPIPlanPtr delivery_plan;
static SPIPlanPtr outcome_plan;
static SPIPlanPtr prune_plan;


/* ---------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------
 */

/* clerk_sync.webhook_now: empty, or a whole number of seconds. */
static bool
check_webhook_now(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (p == NULL || *p == '\0')
		return true;
	if (strlen(p) > 18 || strspn(p, "0123456789") != strlen(p))
	{
		GUC_check_errdetail("clerk_sync.webhook_now is a Unix time in whole seconds, or 0 for the server clock.");
		return false;
	}
	return true;
}

void
clerk_webhook_init(void)
{
	DefineCustomStringVariable("clerk_sync.webhook_now",
							   "Unix time, in seconds, that webhook verification takes for the current time.",
							   "For tests with fixed signed deliveries; 0 uses the server clock.",
							   &clerk_sync_webhook_now,
							   "0",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_webhook_now, NULL, NULL);
	DefineCustomIntVariable("clerk_sync.webhook_max_body",
							"Largest webhook body clerk_handle_webhook() verifies.",
							"A larger body is refused before its signature is computed. Clerk's events are far smaller than the default of 1MB.",
							&clerk_sync_webhook_max_body,
							1024 * 1024, 1024, 1024 * 1024 * 1024 - 1,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}


/* ---------------------------------------------------------------------
 * Svix verification
 * ---------------------------------------------------------------------
 */

/* The current Unix time, or clerk_sync.webhook_now when it is set. */
static int64
webhook_clock(void)
{
	if (clerk_sync_webhook_now != NULL && clerk_sync_webhook_now[0] != '\0')
	{
		int64		fixed = strtoi64(clerk_sync_webhook_now, NULL, 10);

		if (fixed > 0)
			return fixed;
	}
	return (int64) timestamptz_to_time_t(GetCurrentTimestamp());
}

/*
 * The HMAC key of a Svix secret: "whsec_" (optional) and standard base64.
 * Returns NULL, with nothing of the secret left behind, when it is not one.
 */
static unsigned char *
webhook_key(const char *secret, size_t *keylen)
{
	const char *b64 = secret;
	size_t		len;
	size_t		cap;
	unsigned char *key;

	if (strncmp(b64, WHSEC_PREFIX, WHSEC_PREFIX_LEN) == 0)
		b64 += WHSEC_PREFIX_LEN;
	len = strlen(b64);
	if (len == 0 || len > WEBHOOK_SECRET_MAX_LEN)
		return NULL;
	cap = len / 4 * 3 + 3;
	key = palloc(cap);
	if (sodium_base642bin(key, cap, b64, len, NULL, keylen, NULL,
						  sodium_base64_VARIANT_ORIGINAL) != 0 || *keylen < WEBHOOK_KEY_MIN_BYTES)
	{
		sodium_memzero(key, cap);
		pfree(key);
		return NULL;
	}
	return key;
}

/*
 * Refuse a delivery (sqlerrcode: the tolerance, or a signature that fails
 * for any reason).  The caller of clerk_handle_webhook() is not
 * authenticated yet, so its error says only what failed ("signature
 * verification failed", "stale timestamp"), never the server's clock or
 * whether a secret is configured; the reason goes to the server log.
 */
static void
reject(int sqlerrcode, const char *msg_id,
	   const char *reason, const char *hint)
{
	StringInfoData id;

	initStringInfo(&id);
	escape_json(&id, msg_id);
	ereport(LOG_SERVER_ONLY,
			(errmsg("clerk_sync: webhook %s refused: %s", id.data, reason),
			 hint ? errhint("%s", hint) : 0,
			 errhidestmt(true)));
	if (sqlerrcode == CLERK_ERRCODE_WEBHOOK_TOLERANCE)
		ereport(ERROR,
				(errcode(sqlerrcode),
				 errmsg("stale timestamp"),
				 errdetail("The svix-timestamp is too far from the server's clock; the server log says more.")));
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg("signature verification failed"),
			 errdetail("The server log says why.")));
}

/*
 * Check one delivery: the timestamp within the tolerance, and one of the
 * v1 signatures equal to HMAC-SHA256(key, "id.timestamp.body").  Returns
 * only if the delivery is authentic; every failure is an ERROR with its
 * own SQLSTATE, and no message carries the secret or the expected
 * signature.
 */
static void
webhook_verify(const char *body, size_t bodylen, const char *msg_id,
			   const char *ts_text, const char *signatures)
{
	char	   *secret;
	unsigned char *key;
	size_t		keylen;
	int64		ts;
	int64		now;
	char	   *end;
	char		ts_canonical[32];
	crypto_auth_hmacsha256_state state;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char		expected[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES,
												   sodium_base64_VARIANT_ORIGINAL)];
	size_t		expected_len;
	char	   *list;
	char	   *entry;
	char	   *save;
	bool		any_v1 = false;
	bool		matched = false;

	/* the timestamp: a whole number of seconds, close to now */
	errno = 0;
	ts = strtoi64(ts_text, &end, 10);
	if (errno != 0 || end == ts_text || *end != '\0' ||
		!(ts_text[0] == '-' || ts_text[0] == '+' || isdigit((unsigned char) ts_text[0])))
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_TIMESTAMP),
				 errmsg("invalid svix-timestamp header"),
				 errdetail("The svix-timestamp header must be a Unix time in whole seconds.")));
	now = webhook_clock();
	if (ts < now - CLERK_WEBHOOK_TOLERANCE_SECONDS || ts > now + CLERK_WEBHOOK_TOLERANCE_SECONDS)
		reject(CLERK_ERRCODE_WEBHOOK_TOLERANCE, msg_id,
			   psprintf("the svix-timestamp is " INT64_FORMAT " and the database server's clock is at " INT64_FORMAT "; they may be at most %d seconds apart",
						ts, now, CLERK_WEBHOOK_TOLERANCE_SECONDS),
			   "A replayed old delivery is refused by design; otherwise check the clocks.");

	/* no secret, or an unusable one, fails as a wrong signature does */
	secret = clerk_resolve_secret(CLERK_SECRET_WEBHOOK);
	if (secret == NULL && clerk_secret_removed_setting_set(CLERK_SECRET_WEBHOOK))
		reject(CLERK_ERRCODE_WEBHOOK_BAD_SIGNATURE, msg_id,
			   "no webhook secret is configured",
			   "clerk_sync.webhook_secret is no longer read: name a file with clerk_sync.webhook_secret_file, call clerk_set_webhook_secret(), or set CLERK_WEBHOOK_SECRET in the server's environment.");
	if (secret == NULL)
		reject(CLERK_ERRCODE_WEBHOOK_BAD_SIGNATURE, msg_id,
			   "no webhook secret is configured",
			   "Name a file with clerk_sync.webhook_secret_file, call clerk_set_webhook_secret(), or set CLERK_WEBHOOK_SECRET in the server's environment.");

	key = webhook_key(secret, &keylen);
	sodium_memzero(secret, strlen(secret));
	pfree(secret);
	if (key == NULL)
		reject(CLERK_ERRCODE_WEBHOOK_BAD_SIGNATURE, msg_id,
			   "the webhook secret is not a Svix signing secret (\"whsec_\" followed by the standard base64 of at least 24 bytes, as the Clerk Dashboard shows it for the endpoint)",
			   "Store the endpoint's signing secret with clerk_set_webhook_secret(), or put it in a file named by clerk_sync.webhook_secret_file.");

	/* Svix signs the timestamp as a plain integer */
	snprintf(ts_canonical, sizeof(ts_canonical), INT64_FORMAT, ts);
	crypto_auth_hmacsha256_init(&state, key, keylen);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) msg_id, strlen(msg_id));
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) ts_canonical, strlen(ts_canonical));
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) ".", 1);
	crypto_auth_hmacsha256_update(&state, (const unsigned char *) body, bodylen);
	crypto_auth_hmacsha256_final(&state, mac);
	sodium_memzero(&state, sizeof(state));
	sodium_memzero(key, keylen);
	pfree(key);
	sodium_bin2base64(expected, sizeof(expected), mac, sizeof(mac), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(mac, sizeof(mac));
	expected_len = strlen(expected);

	/*
	 * "v1,<base64> v1,<base64> ...": entries of other versions, and entries
	 * without a comma, are skipped.  Every v1 entry is compared, in
	 * constant time, even after a match.
	 */
	list = pstrdup(signatures);
	for (entry = strtok_r(list, " ", &save); entry != NULL; entry = strtok_r(NULL, " ", &save))
	{
		char	   *comma = strchr(entry, ',');

		if (comma == NULL)
			continue;
		*comma = '\0';
		if (strcmp(entry, "v1") != 0)
			continue;
		any_v1 = true;
		if (strlen(comma + 1) == expected_len &&
			sodium_memcmp(comma + 1, expected, expected_len) == 0)
			matched = true;
	}
	pfree(list);
	sodium_memzero(expected, sizeof(expected));

	if (!matched)
		reject(CLERK_ERRCODE_WEBHOOK_BAD_SIGNATURE, msg_id,
			   any_v1 ?
			   "no v1 signature in the svix-signature header matches the body, svix-id and svix-timestamp signed with the webhook secret" :
			   "the svix-signature header has no v1 signature",
			   "Check that the webhook secret is this endpoint's signing secret, and that the body is passed exactly as received.");
}


/* ---------------------------------------------------------------------
 * The event
 * ---------------------------------------------------------------------
 */

static void
webhook_body_context(void *arg)
{
	errcontext("webhook body of delivery %s", (const char *) arg);
}

/*
 * Parse a verified body into the event it carries: repaired as every
 * answer from Clerk is (parse.h).  A body whose object still cannot be
 * converted is an event that fails alone, not a bad request.
 */
static void
webhook_parse(const char *body, size_t len, const char *msg_id, WebhookEvent *ev)
{
	ErrorContextCallback errcallback;
	ClerkParsed p;
	char	   *err;
	Jsonb	   *j;
	int			i;

	errcallback.callback = webhook_body_context;
	errcallback.arg = (void *) msg_id;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	err = clerk_parse(body, len, &p);
	error_context_stack = errcallback.previous;
	if (err != NULL)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
				 errmsg("webhook %s is not a Clerk event", msg_id),
				 errdetail("The body is not JSON: %s.", err)));

	memset(ev, 0, sizeof(*ev));
	if (p.repaired != NIL)
		ev->repairs = ((ClerkRepaired *) linitial(p.repaired))->details;
	j = p.root;
	if (j == NULL)
	{
		/* what the text says, for the record */
		ev->type = clerk_parsed_string(&p, p.text.type);
		if (ev->type == NULL || ev->type[0] == '\0')
			ereport(ERROR,
					(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
					 errmsg("webhook %s is not a Clerk event", msg_id),
					 errdetail("The body has no \"type\" string.")));
		ev->object_id = clerk_parsed_string(&p, p.text.data_id);
		ev->unstorable = p.rejects != NIL ? ((ClerkReject *) linitial(p.rejects))->reason :
			"the body cannot be converted to jsonb";
		for (i = 0; i < (int) lengthof(webhook_event_types); i++)
			if (strcmp(ev->type, webhook_event_types[i].type) == 0)
				ev->known = &webhook_event_types[i];
		return;
	}
	if (!JB_ROOT_IS_OBJECT(j))
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
				 errmsg("webhook %s is not a Clerk event", msg_id),
				 errdetail("The body is not a JSON object.")));
	ev->type = clerk_json_string(&j->root, "type");
	if (ev->type == NULL || ev->type[0] == '\0')
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
				 errmsg("webhook %s is not a Clerk event", msg_id),
				 errdetail("The body has no \"type\" string.")));

	/* the envelope's timestamp: Unix milliseconds (a value in seconds is taken as such) */
	ev->timestamp_ms = Max(clerk_json_ms(&j->root, "timestamp", true), 0);

	/* the object, and its id (recorded for every event type) */
	ev->data = clerk_json_object(&j->root, "data");
	if (ev->data != NULL)
		ev->object_id = clerk_json_string(&ev->data->root, "id");

	for (i = 0; i < (int) lengthof(webhook_event_types); i++)
		if (strcmp(ev->type, webhook_event_types[i].type) == 0)
			ev->known = &webhook_event_types[i];
	if (ev->known == NULL)
		return;

	if (ev->data == NULL)
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
				 errmsg("webhook %s is not a Clerk event", msg_id),
				 errdetail("A %s event has a \"data\" object.", ev->type)));
	if (ev->object_id == NULL || ev->object_id[0] == '\0')
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_BAD_PAYLOAD),
				 errmsg("webhook %s is not a Clerk event", msg_id),
				 errdetail("The \"data\" of a %s event has an \"id\" string.", ev->type)));

	if (ev->known->entity == CLERK_ORGANIZATIONS)
		ev->organization_id = pstrdup(ev->object_id);
	else if (ev->known->entity == CLERK_ORG_INVITATIONS || ev->known->entity == CLERK_ORG_DOMAINS)
		ev->organization_id = clerk_json_string(&ev->data->root, "organization_id");
	else if (ev->known->entity == CLERK_MEMBERSHIPS)
	{
		Jsonb	   *org = clerk_json_object(&ev->data->root, "organization");

		if (org != NULL)
			ev->organization_id = clerk_json_string(&org->root, "id");
	}
	else if (ev->known->entity == CLERK_SUBSCRIPTION_ITEMS || ev->known->entity == CLERK_PAYMENT_ATTEMPTS)
	{
		/* an organization payer's; a user payer's organization_id is "" */
		Jsonb	   *payer = clerk_json_object(&ev->data->root, "payer");

		if (payer != NULL)
			ev->organization_id = clerk_json_string(&payer->root, "organization_id");
		if (ev->organization_id != NULL && ev->organization_id[0] == '\0')
			ev->organization_id = NULL;
	}
}


/* ---------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------
 */


/*
 * Record the delivery; false if its id was recorded already.  Being the
 * first write, it also orders concurrent deliveries of one id: the second
 * waits for the first to commit, and then finds it.
 */
static bool
record_delivery(const char *msg_id, const WebhookEvent *ev, const char *result)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (delivery_plan == NULL)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		delivery_plan = clerk_prepare_saved("INSERT INTO clerk.webhook_deliveries "
										"(svix_id, event_type, object_id, result) "
										"VALUES ($1, $2, $3, $4) ON CONFLICT (svix_id) DO NOTHING",
										4, types);
	}
	values[0] = CStringGetTextDatum(msg_id);
	values[1] = CStringGetTextDatum(ev->type);
	if (ev->object_id != NULL)
		values[2] = CStringGetTextDatum(ev->object_id);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(result);
	if (SPI_execute_plan(delivery_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the webhook delivery");
	return SPI_processed == 1;
}

static void
record_outcome(const char *msg_id, const char *outcome)
{
	Datum		values[2];

	if (outcome_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		outcome_plan = clerk_prepare_saved("UPDATE clerk.webhook_deliveries SET outcome = $2 "
									   "WHERE svix_id = $1", 2, types);
	}
	values[0] = CStringGetTextDatum(msg_id);
	values[1] = CStringGetTextDatum(outcome);
	if (SPI_execute_plan(outcome_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome of the webhook delivery");
}

/* a delivery id is kept at least twice the timestamp tolerance: it can be replayed until then */
#define WEBHOOK_KEEP_MINUTES (2 * CLERK_WEBHOOK_TOLERANCE_SECONDS / 60)

/*
 * Forget deliveries older than clerk_sync.log_retention (never younger than
 * WEBHOOK_KEEP_MINUTES), a batch at a time,
 * skipping rows another session is pruning: a busy endpoint shares the
 * work out without anyone waiting.
 */
static void
prune_deliveries(void)
{
	Datum		value;

	if (clerk_sync_log_retention <= 0)
		return;
	if (prune_plan == NULL)
	{
		Oid			types[1] = {INT4OID};

		prune_plan = clerk_prepare_saved("DELETE FROM clerk.webhook_deliveries WHERE svix_id IN "
									 "(SELECT svix_id FROM clerk.webhook_deliveries "
									 " WHERE received_at < pg_catalog.now() - pg_catalog.make_interval(mins => "
									 "   greatest($1, " CppAsString2(WEBHOOK_KEEP_MINUTES) ")) "
									 " ORDER BY received_at LIMIT " CppAsString2(WEBHOOK_PRUNE_BATCH)
									 " FOR UPDATE SKIP LOCKED)",
									 1, types);
	}
	value = Int32GetDatum(clerk_sync_log_retention);
	if (SPI_execute_plan(prune_plan, &value, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune clerk.webhook_deliveries");
}

/* Unix milliseconds as a timestamptz. */
static TimestampTz
ms_to_timestamptz(int64 ms)
{
	return (TimestampTz) (ms * 1000) -
		((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

typedef struct ApplyArgs
{
	const WebhookEvent *ev;
	ClerkEventOutcome outcome;
	int64		cascaded[CLERK_NENTITIES];	/* rows deleted with the object, by entity */
} ApplyArgs;

static void
store_event(void *varg)
{
	ApplyArgs  *a = (ApplyArgs *) varg;
	const WebhookEvent *ev = a->ev;

	if (ev->known->action == WEBHOOK_UPSERT)
	{
		a->outcome = clerk_store_event(ev->known->entity, ev->data, ev->type);
		if (ev->known->entity == CLERK_SESSIONS)
			clerk_store_prune_sessions(clerk_sync_session_retention);
	}
	else
	{
		TimestampTz at = ev->timestamp_ms > 0 ? ms_to_timestamptz(ev->timestamp_ms) :
			GetCurrentTransactionStartTimestamp();

		a->outcome = clerk_store_delete(ev->known->entity, ev->data, at, a->cascaded);
	}
}

/*
 * Apply a known event through store.c and audit it; returns the outcome.
 * An object Postgres cannot store (a data exception, a limit) fails alone:
 * "failed", audited with the reason, and the delivery still succeeds, for
 * Svix would only send the same content again.  Anything else (a lock
 * timeout, a lost connection) is raised, and Svix retries.
 */
static const char *
apply_event(const char *msg_id, const WebhookEvent *ev)
{
	ApplyArgs	a = {.ev = ev, .outcome = CLERK_EVENT_UNCHANGED};
	const char *outcome;
	const char *reason = ev->unstorable;
	int			sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	StringInfoData details;

	if (reason == NULL)
	{
		ErrorData  *err = clerk_try(store_event, &a);

		if (err != NULL)
		{
			int			class = ERRCODE_TO_CATEGORY(err->sqlerrcode);

			/* (a cardinality violation: one object twice in the event's data) */
			if (class != ERRCODE_DATA_EXCEPTION && class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION &&
				class != ERRCODE_PROGRAM_LIMIT_EXCEEDED && class != ERRCODE_CARDINALITY_VIOLATION)
				ReThrowError(err);
			reason = err->message;
			sqlerrcode = err->sqlerrcode;
		}
	}
	outcome = reason != NULL ? "failed" : clerk_event_outcome_name(a.outcome);

	initStringInfo(&details);
	appendStringInfoString(&details, "{\"svix_id\": ");
	escape_json(&details, msg_id);
	appendStringInfo(&details, ", \"outcome\": \"%s\"", outcome);
	if (reason != NULL)
	{
		appendStringInfoString(&details, ", \"reason\": ");
		escape_json(&details, reason);
		appendStringInfo(&details, ", \"sqlstate\": \"%s\"", unpack_sql_state(sqlerrcode));
	}
	if (ev->repairs != NULL)
		appendStringInfo(&details, ", \"repaired\": %s", ev->repairs);
	if (ev->timestamp_ms > 0)
		appendStringInfo(&details, ", \"event_timestamp\": " INT64_FORMAT, ev->timestamp_ms);
	for (int e = 0; e < CLERK_NENTITIES; e++)
		if (a.cascaded[e] > 0)
			appendStringInfo(&details, ", \"%s_deleted\": " INT64_FORMAT,
							 clerk_entity_name((ClerkEntity) e), a.cascaded[e]);
	appendStringInfoChar(&details, '}');
	clerk_audit(NULL, psprintf("webhook.%s", ev->type), clerk_entity_name(ev->known->entity),
				ev->object_id, ev->organization_id, 0, details.data);

	return outcome;
}

/*
 * The longest header value read: Svix's ids and timestamps are a few dozen
 * bytes, a signature header a few signatures of 50; anything longer is
 * refused before it is read, signed or logged.
 */
#define WEBHOOK_MAX_HEADER 4096

/* The value of a header argument; a missing, empty or oversized one is an error. */
static char *
header_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *value;

	if (!PG_ARGISNULL(argno) &&
		toast_raw_datum_size(PG_GETARG_DATUM(argno)) - VARHDRSZ > WEBHOOK_MAX_HEADER)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("webhook header %s is too long", name),
				 errdetail("A header value may have at most %d bytes.", WEBHOOK_MAX_HEADER)));
	value = PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));

	if (value == NULL || value[0] == '\0')
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_MISSING),
				 errmsg("webhook header %s is missing", name),
				 errdetail("Every Clerk webhook delivery carries svix-id, svix-timestamp and svix-signature headers."),
				 errhint("Pass the three headers as received (webhook-id, webhook-timestamp and webhook-signature are the same).")));
	return value;
}

/*
 * clerk_handle_webhook(body text, svix_id text, svix_timestamp text,
 *                      svix_signature text) returns text
 *
 * Verify and apply one delivery.  Returns the event type applied,
 * "duplicate" for a delivery id applied before, or "ignored:<type>" for
 * an event type clerk_sync does not store (recorded, not an error).  The
 * writes run as clerk_sync_writer, so a role needs only EXECUTE.  A body
 * over clerk_sync.webhook_max_body is refused before it is read.
 */
Datum
clerk_handle_webhook(PG_FUNCTION_ARGS)
{
	text	   *body;
	Size		bodylen;
	char	   *msg_id;
	char	   *ts_text;
	char	   *signatures;
	WebhookEvent ev;
	char	   *result;
	ClerkSavedUser saved;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(CLERK_ERRCODE_WEBHOOK_MISSING),
				 errmsg("webhook body is missing"),
				 errdetail("clerk_handle_webhook() needs the request body exactly as received.")));
	bodylen = toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ;
	if (bodylen > (Size) clerk_sync_webhook_max_body)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("webhook body is too large"),
				 errdetail("The body has %zu bytes; clerk_sync.webhook_max_body allows %d.",
						   bodylen, clerk_sync_webhook_max_body),
				 errhint("Clerk's events are far smaller; a superuser may raise clerk_sync.webhook_max_body.")));
	body = PG_GETARG_TEXT_PP(0);
	msg_id = header_arg(fcinfo, 1, "svix-id");
	ts_text = header_arg(fcinfo, 2, "svix-timestamp");
	signatures = header_arg(fcinfo, 3, "svix-signature");

	webhook_verify(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), msg_id, ts_text, signatures);
	webhook_parse(text_to_cstring(body), VARSIZE_ANY_EXHDR(body), msg_id, &ev);
	result = ev.known != NULL ? ev.type : psprintf("ignored:%s", ev.type);

	/* as the role that writes the tables, with nothing but pg_catalog in the path */
	clerk_become_writer(&saved, CLERK_SQL_FOR_WEBHOOKS);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (!record_delivery(msg_id, &ev, result))
		result = "duplicate";
	else
	{
		if (ev.known != NULL)
			record_outcome(msg_id, apply_event(msg_id, &ev));
		prune_deliveries();
	}

	SPI_finish();
	clerk_restore_user(&saved);

	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/*
 * clerk_set_webhook_secret(secret text) returns void
 *
 * Store the endpoint's signing secret encrypted, preferred over the file
 * clerk_sync.webhook_secret_file names; an empty string removes it.
 */
Datum
clerk_set_webhook_secret(PG_FUNCTION_ARGS)
{
	text	   *arg = PG_GETARG_TEXT_PP(0);
	char	   *secret = text_to_cstring(arg);

	if (secret[0] != '\0')
	{
		size_t		keylen;
		unsigned char *key = webhook_key(secret, &keylen);

		if (key == NULL)
		{
			sodium_memzero(secret, strlen(secret));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid webhook secret"),
					 errdetail("A signing secret is \"whsec_\" followed by the standard base64 of at least 24 bytes, as the Clerk Dashboard shows it for the endpoint.")));
		}
		sodium_memzero(key, keylen);
		pfree(key);
	}

	clerk_store_secret(CLERK_SECRET_WEBHOOK, secret, strlen(secret));

	sodium_memzero(secret, strlen(secret));
	if ((Pointer) arg != DatumGetPointer(PG_GETARG_DATUM(0)))
		sodium_memzero(arg, VARSIZE_ANY(arg));
	PG_RETURN_VOID();
}
