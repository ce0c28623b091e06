/*
 * http.c
 *		libcurl client for the Clerk Backend API.
 *
 * One client owns a curl multi handle and a small pool of easy handles that
 * are reused from request to request, so connections stay alive.  It keeps
 * up to `concurrency` requests in flight (fewer while the API shows that
 * more would not help: see the window below), never starts more than
 * `rate_limit` requests in any 10 seconds, honours Retry-After on 429, and
 * retries 5xx answers, timeouts and dropped connections with exponential
 * backoff and jitter.  Everything curl allocates stays on malloc and is
 * freed by a memory context reset callback, whatever path the caller takes
 * out (return, ERROR, cancel).
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "base/base.h"
#include "clerk/http.h"
#include "clerk/rate_budget.h"

/* the largest answer body accepted, a guard against a runaway server */
#define CLERK_HTTP_MAX_BODY (256 * 1024 * 1024)
/* a 429 is retried this many times per request, whatever max_retries says */
#define CLERK_HTTP_MAX_429 50
/* longest wait a Retry-After header can ask for */
#define CLERK_HTTP_MAX_RETRY_AFTER_S 60
/* longest backoff between two attempts */
#define CLERK_HTTP_MAX_BACKOFF_MS 30000
/* slack added to the 10 s window so clocks on both ends can disagree a little */
#define CLERK_HTTP_WINDOW_MS 10100
/* how often waiting code looks at interrupts */
#define CLERK_HTTP_TICK_MS 100
/* the window starts here (or at the maximum, if lower) */
#define CLERK_HTTP_WINDOW_START 4
/* latencies remembered to tell a rising latency from a listing's own cost */
#define CLERK_HTTP_LATENCY_RING 16
/* an answer this many times slower than the fastest recent one means congestion */
#define CLERK_HTTP_LATENCY_RISE 3.0

ClerkHttpInterruptCheck clerk_http_interrupt_check = NULL;

/* One easy handle and the transfer it carries. */
typedef struct HttpSlot
{
	CURL	   *easy;
	int			request;		/* index into the batch, -1 when idle */
	char	   *buf;			/* malloc'd answer body */
	size_t		len;
	size_t		cap;
	bool		overflow;
	char		errbuf[CURL_ERROR_SIZE];
} HttpSlot;

struct ClerkHttpClient
{
	MemoryContext mcxt;
	MemoryContextCallback cleanup;
	bool		destroyed;

	char	   *base_url;
	int			timeout_ms;
	int			max_retries;
	int			retry_backoff_ms;
	int			rate_limit;
	int			concurrency;

	CURLM	   *multi;
	struct curl_slist *headers; /* holds the Authorization header */
	HttpSlot   *slots;

	/* start times (ms) of the last rate_limit requests, a ring */
	int64	   *starts;
	int			nstarts;
	int			next_start;

	int64		pause_until;	/* no request starts before this (429) */

	/*
	 * The window: requests allowed in flight now, between 1 and concurrency
	 * (never above rate_limit).  It grows by one per answer that came back
	 * fast while it is below what fills the rate limit (requests per second
	 * times the latency), and is halved on a 429 or an answer much slower
	 * than the recent ones, at most once per round trip.
	 */
	int			window;
	int			grow_credit;	/* good answers since the window last grew */
	bool		slow_start;		/* until the first cut, grow by one per answer */
	int64		last_cut_ms;
	double		latency_ring[CLERK_HTTP_LATENCY_RING];
	int			nlatency;
	double		latency_avg;	/* moving average, ms */

	/* requests submitted and not yet released, indexed by request id */
	struct HttpRequest *reqs;
	int			nreqs;
	int			maxreqs;
	MemoryContext req_cxt;		/* paths and answer bodies */
	uint64		next_seq;		/* of the next request submitted */

	ClerkHttpStats stats;
};

/* State of one logical request, from submit to release. */
typedef struct HttpRequest
{
	char	   *path;
	bool		in_use;
	int			attempts;		/* failures so far, 429 excepted */
	int			attempts_429;
	int64		ready_at;		/* may start at this time (ms) */
	bool		running;
	bool		done;
	bool		varying;		/* its latency depends on what it asks for */
	const char *method;			/* NULL for GET; else a write (see clerk_http_submit_write) */
	char	   *body;			/* a write's JSON body, or NULL */
	uint64		seq;			/* submission order */
	TimestampTz sent_at;		/* when the current attempt was handed to curl */
	ClerkHttpResult result;		/* once done */
} HttpRequest;

static int64
now_ms(void)
{
	instr_time	t;

	INSTR_TIME_SET_CURRENT(t);
	return (int64) INSTR_TIME_GET_MILLISEC(t);
}

/* Overwrite a string that held a secret before it is freed. */
static void
wipe(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
}

/* Free every curl resource; safe to call twice. */
static void
http_cleanup(void *arg)
{
	ClerkHttpClient *client = (ClerkHttpClient *) arg;
	int			i;

	if (client->destroyed)
		return;
	client->destroyed = true;

	for (i = 0; i < client->concurrency; i++)
	{
		HttpSlot   *slot = &client->slots[i];

		if (slot->easy != NULL)
		{
			if (client->multi != NULL && slot->request >= 0)
				curl_multi_remove_handle(client->multi, slot->easy);
			curl_easy_cleanup(slot->easy);
			slot->easy = NULL;
		}
		free(slot->buf);
		slot->buf = NULL;
	}
	if (client->multi != NULL)
		curl_multi_cleanup(client->multi);
	client->multi = NULL;
	if (client->headers != NULL)
	{
		struct curl_slist *h;

		for (h = client->headers; h != NULL; h = h->next)
			wipe(h->data);
		curl_slist_free_all(client->headers);
		client->headers = NULL;
	}
}

static size_t
http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	HttpSlot   *slot = (HttpSlot *) arg;
	size_t		n = size * nmemb;

	if (slot->len + n + 1 > CLERK_HTTP_MAX_BODY)
	{
		slot->overflow = true;
		return 0;				/* makes curl fail the transfer */
	}
	if (slot->len + n + 1 > slot->cap)
	{
		size_t		cap = Max(slot->cap * 2, 64 * 1024);
		char	   *nbuf;

		while (cap < slot->len + n + 1)
			cap *= 2;
		nbuf = realloc(slot->buf, cap);
		if (nbuf == NULL)
			return 0;
		slot->buf = nbuf;
		slot->cap = cap;
	}
	memcpy(slot->buf + slot->len, data, n);
	slot->len += n;
	slot->buf[slot->len] = '\0';
	return n;
}

/* Append a header to the client's list; curl copies the string. */
static void
add_header(ClerkHttpClient *client, const char *header)
{
	struct curl_slist *l = curl_slist_append(client->headers, header);

	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	client->headers = l;
}

ClerkHttpClient *
clerk_http_create(MemoryContext mcxt, const ClerkHttpConfig *config)
{
	ClerkHttpClient *client;
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	char	   *auth;
	size_t		authlen;
	int			i;

	client = palloc0(sizeof(ClerkHttpClient));
	client->mcxt = mcxt;
	client->base_url = pstrdup(config->api_url);
	/* a trailing slash would double up with the paths' leading one */
	while (strlen(client->base_url) > 0 &&
		   client->base_url[strlen(client->base_url) - 1] == '/')
		client->base_url[strlen(client->base_url) - 1] = '\0';
	client->timeout_ms = config->timeout_ms;
	client->max_retries = config->max_retries;
	client->retry_backoff_ms = Max(config->retry_backoff_ms, 1);
	client->rate_limit = Max(config->rate_limit, 1);
	client->concurrency = Max(Min(config->concurrency, client->rate_limit), 1);
	client->window = Min(client->concurrency, CLERK_HTTP_WINDOW_START);
	client->slow_start = true;
	client->stats.concurrency = client->stats.concurrency_peak = client->window;
	client->stats.concurrency_max = client->concurrency;
	client->slots = palloc0(sizeof(HttpSlot) * client->concurrency);
	client->nstarts = client->rate_limit;
	client->starts = palloc0(sizeof(int64) * client->nstarts);
	for (i = 0; i < client->nstarts; i++)
		client->starts[i] = PG_INT64_MIN / 2;
	for (i = 0; i < client->concurrency; i++)
		client->slots[i].request = -1;
	client->maxreqs = 64;
	client->reqs = palloc0(sizeof(HttpRequest) * client->maxreqs);
	client->req_cxt = AllocSetContextCreate(mcxt, "clerk_sync http answers", ALLOCSET_DEFAULT_SIZES);

	/* From here on, whatever happens, the reset callback frees curl's part. */
	client->cleanup.func = http_cleanup;
	client->cleanup.arg = client;
	MemoryContextRegisterResetCallback(mcxt, &client->cleanup);

	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(client->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) client->concurrency);

	authlen = strlen(config->secret_key) + 32;
	auth = palloc(authlen);
	PG_TRY();
	{
		snprintf(auth, authlen, "Authorization: Bearer %s", config->secret_key);
		add_header(client, auth);
	}
	PG_FINALLY();
	{
		explicit_bzero(auth, authlen);
	}
	PG_END_TRY();
	pfree(auth);
	add_header(client, "Accept: application/json");
	add_header(client, "Content-Type: application/json");
	add_header(client, "Clerk-API-Version: " CLERK_API_VERSION);

	for (i = 0; i < client->concurrency; i++)
	{
		HttpSlot   *slot = &client->slots[i];
		CURL	   *e = curl_easy_init();

		if (e == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
		slot->easy = e;
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(e, CURLOPT_USERAGENT, CLERK_USER_AGENT);
		/* "" keeps libcurl from taking a proxy from the environment */
		curl_easy_setopt(e, CURLOPT_PROXY, config->proxy ? config->proxy : "");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, client->headers);
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) client->timeout_ms);
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(client->timeout_ms, 10000));
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, slot);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot->errbuf);
		curl_easy_setopt(e, CURLOPT_PRIVATE, slot);
	}

	MemoryContextSwitchTo(old);
	return client;
}

void
clerk_http_destroy(ClerkHttpClient *client)
{
	http_cleanup(client);
}

const ClerkHttpStats *
clerk_http_stats(ClerkHttpClient *client)
{
	return &client->stats;
}

/* Check for cancel, shutdown and the caller's own reasons to stop. */
static void
http_check_interrupts(void)
{
	/* the caller's own reasons first: they say best why the work stops */
	if (clerk_http_interrupt_check != NULL)
		clerk_http_interrupt_check();
	CHECK_FOR_INTERRUPTS();
}

/* Sleep up to ms milliseconds, waking for interrupts. */
static void
http_sleep(int64 ms, bool keep_latch)
{
	int			rc;

	if (ms <= 0)
		return;
	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   Min(ms, CLERK_HTTP_TICK_MS), PG_WAIT_EXTENSION);
	/* a caller that waits for its latch too sees it still set */
	if (!(keep_latch && (rc & WL_LATCH_SET)))
		ResetLatch(MyLatch);
	http_check_interrupts();
}

/*
 * The earliest time a new request may start under the rate limit: the
 * start of the request rate_limit requests ago plus the window.
 */
static int64
rate_permit_at(ClerkHttpClient *client)
{
	return client->starts[client->next_start] + CLERK_HTTP_WINDOW_MS;
}

/* Delay before the attempt after `failures` failures: doubled, jittered. */
static int64
backoff_ms(ClerkHttpClient *client, int failures)
{
	double		d = client->retry_backoff_ms;
	int			i;

	for (i = 1; i < failures && d < CLERK_HTTP_MAX_BACKOFF_MS; i++)
		d *= 2;
	d = Min(d, CLERK_HTTP_MAX_BACKOFF_MS);
	/* "equal jitter": between half and all of the delay */
	return (int64) (d / 2 + pg_prng_double(&pg_global_prng_state) * d / 2);
}

static void
start_request(ClerkHttpClient *client, HttpSlot *slot, int index,
			  HttpRequest *req, int64 now)
{
	char	   *url = psprintf("%s%s", client->base_url, req->path);

	/* a reused handle forgets the last request's method and body first */
	curl_easy_setopt(slot->easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(slot->easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->method != NULL && (req->body != NULL || strcmp(req->method, "DELETE") != 0))
		curl_easy_setopt(slot->easy, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "{}");

	/*
	 * A write goes on a new connection: on a reused one that the server
	 * closes without an answer, libcurl sends the request again by itself,
	 * and a create whose answer was lost would be made twice.
	 */
	curl_easy_setopt(slot->easy, CURLOPT_FRESH_CONNECT, req->method != NULL ? 1L : 0L);
	slot->request = index;
	slot->len = 0;
	slot->overflow = false;
	slot->errbuf[0] = '\0';
	curl_easy_setopt(slot->easy, CURLOPT_URL, url);	/* curl copies it */
	pfree(url);
	if (curl_multi_add_handle(client->multi, slot->easy) != CURLM_OK)
		elog(ERROR, "could not add a libcurl transfer");
	req->running = true;
	req->sent_at = GetCurrentTimestamp();
	client->starts[client->next_start] = now;
	client->next_start = (client->next_start + 1) % client->nstarts;
	client->stats.requests++;
}

/*
 * Say why a request has no usable answer: the message, formatted (and
 * translated) here, lives with the answers; clerk_http_check() raises it.
 */
static void set_error(ClerkHttpClient *client, ClerkHttpResult *res, int sqlerrcode,
					  const char *fmt,...) pg_attribute_printf(4, 5);

static void
set_error(ClerkHttpClient *client, ClerkHttpResult *res, int sqlerrcode, const char *fmt,...)
{
	MemoryContext old = MemoryContextSwitchTo(client->req_cxt);
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, _(fmt), args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	MemoryContextSwitchTo(old);
	res->sqlerrcode = sqlerrcode;
	res->error = buf.data;
}

static void
window_set(ClerkHttpClient *client, int w)
{
	client->window = Max(1, Min(w, client->concurrency));
	client->grow_credit = 0;
	client->stats.concurrency = client->window;
	client->stats.concurrency_peak = Max(client->stats.concurrency_peak, client->window);
}

/* Halve the window, once per round trip. */
static void
window_cut(ClerkHttpClient *client, int64 now)
{
	if (now - client->last_cut_ms < Max(client->latency_avg, CLERK_HTTP_TICK_MS))
		return;
	client->last_cut_ms = now;
	client->slow_start = false;
	client->stats.backoffs++;
	window_set(client, client->window / 2);
}

/*
 * An answer other than a 429 arrived after latency_ms: grow the window, or
 * cut it (not for a varying request, whose latency says nothing about
 * congestion).
 */
static void
window_answer(ClerkHttpClient *client, double latency_ms, bool varying, int64 now)
{
	double		fastest = latency_ms;
	double		fill;
	int			i;

	if (!varying)
	{
		for (i = 0; i < Min(client->nlatency, CLERK_HTTP_LATENCY_RING); i++)
			fastest = Min(fastest, client->latency_ring[i]);
		client->latency_ring[client->nlatency++ % CLERK_HTTP_LATENCY_RING] = latency_ms;
	}
	client->latency_avg = client->latency_avg <= 0 ? latency_ms :
		0.8 * client->latency_avg + 0.2 * latency_ms;
	if (!varying && client->nlatency > CLERK_HTTP_LATENCY_RING / 2 &&
		latency_ms > CLERK_HTTP_LATENCY_RISE * Max(fastest, 1.0))
	{
		window_cut(client, now);
		return;
	}
	/* requests in flight that fill the rate limit at this latency, and one more */
	fill = client->rate_limit / 10.0 * client->latency_avg / 1000.0 + 1;
	if (client->window < fill &&
		(client->slow_start || ++client->grow_credit >= client->window))
		window_set(client, client->window + 1);
}

/* Is this curl failure worth another attempt? */
static bool
curl_retryable(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_GOT_NOTHING:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_PARTIAL_FILE:
		case CURLE_SSL_CONNECT_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * A transfer ended: decide whether the request is done (filling its
 * result) or goes back in the queue for another attempt.
 */
static void
finish_transfer(ClerkHttpClient *client, HttpSlot *slot, CURLcode rc,
				HttpRequest *req, ClerkHttpResult *res, int64 now)
{
	long		status = 0;
	curl_off_t	total_us = 0;
	bool		retry = false;
	int64		delay = 0;

	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(slot->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	curl_multi_remove_handle(client->multi, slot->easy);
	slot->request = -1;
	req->running = false;
	client->stats.bytes += slot->len;

	res->status = status;
	res->latency_ms = total_us / 1000.0;
	res->sent_at = req->sent_at;
	res->error = NULL;
	res->sqlerrcode = 0;
	res->body = NULL;
	res->len = 0;
	res->retry_after_ms = 0;

	if (rc == CURLE_OK && status != 429)
		window_answer(client, res->latency_ms, req->varying, now);

	if (rc != CURLE_OK)
	{
		const char *why = slot->errbuf[0] ? slot->errbuf : curl_easy_strerror(rc);

		if (slot->overflow)
			set_error(client, res, CLERK_ERRCODE_BAD_RESPONSE,
					  "the answer to %s was larger than %ld bytes", req->path,
					  (long) CLERK_HTTP_MAX_BODY);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			set_error(client, res, CLERK_ERRCODE_UNREACHABLE,
					  "request %s timed out after %ld ms", req->path,
					  (long) client->timeout_ms);
		else
			set_error(client, res, CLERK_ERRCODE_UNREACHABLE,
					  "request %s failed: %s", req->path, why);
		retry = curl_retryable(rc) && !slot->overflow;
		if (retry)
			delay = backoff_ms(client, req->attempts + 1);
	}
	else if (status == 429)
	{
		curl_off_t	ra = -1;
		int64		wait_ms;

		client->stats.rate_limited++;
		window_cut(client, now);
		curl_easy_getinfo(slot->easy, CURLINFO_RETRY_AFTER, &ra);
		/* a hostile or broken Retry-After must not stall the run for hours */
		wait_ms = (ra > 0 && ra <= CLERK_HTTP_MAX_RETRY_AFTER_S) ? (int64) ra * 1000 :
			ra > CLERK_HTTP_MAX_RETRY_AFTER_S ? CLERK_HTTP_MAX_RETRY_AFTER_S * 1000 :
			backoff_ms(client, req->attempts_429 + 1);
		/* every request waits: the limit is the instance's, not this request's */
		client->pause_until = Max(client->pause_until, now + wait_ms);
		res->retry_after_ms = wait_ms;
		/* (for a write, the 429 is its answer: its sender waits and sends it again) */
		if (req->method == NULL)
			set_error(client, res, CLERK_ERRCODE_API_ERROR,
					  "request %s was still rate limited (HTTP %ld) after many retries",
					  req->path, status);
		/* without retries (clerk_test_connection, a write), a 429 is the answer */
		if (client->max_retries > 0 && req->method == NULL &&
			++req->attempts_429 <= CLERK_HTTP_MAX_429)
		{
			client->stats.retries++;
			req->ready_at = client->pause_until;
			return;
		}
	}
	else if (status == 401 || (status == 403 && req->method == NULL))
	{
		set_error(client, res, CLERK_ERRCODE_KEY_REJECTED,
				  "Clerk rejected the secret key (%s answered HTTP %ld)", req->path, status);
	}
	else if (status >= 500 || status == 408)
	{
		set_error(client, res, CLERK_ERRCODE_API_ERROR,
				  "Clerk answered %s with HTTP %ld", req->path, status);
		retry = true;
		delay = backoff_ms(client, req->attempts + 1);
	}

	/* a write is never sent again here: its sender knows whether that is safe */
	if (retry && req->method == NULL && req->attempts < client->max_retries)
	{
		req->attempts++;
		client->stats.retries++;
		req->ready_at = now + delay;
		return;
	}

	/* final: keep the body, whatever the status, for the caller to read */
	res->body = MemoryContextAlloc(client->req_cxt, slot->len + 1);
	if (slot->len > 0)
		memcpy(res->body, slot->buf, slot->len);
	res->body[slot->len] = '\0';
	res->len = slot->len;
	req->done = true;

	/* don't keep a huge buffer around after a huge answer */
	if (slot->cap > 4 * 1024 * 1024)
	{
		free(slot->buf);
		slot->buf = NULL;
		slot->cap = 0;
	}
	slot->len = 0;
}

int
clerk_http_submit_varying(ClerkHttpClient *client, const char *path)
{
	int			id = clerk_http_submit(client, path);

	client->reqs[id].varying = true;
	return id;
}

int
clerk_http_submit_write(ClerkHttpClient *client, const char *method, const char *path,
						const char *body)
{
	int			id = clerk_http_submit(client, path);

	client->reqs[id].method = method;
	if (body != NULL)
		client->reqs[id].body = MemoryContextStrdup(client->req_cxt, body);
	return id;
}

int
clerk_http_submit(ClerkHttpClient *client, const char *path)
{
	int			id;
	HttpRequest *req;

	Assert(!client->destroyed);
	for (id = 0; id < client->nreqs; id++)
		if (!client->reqs[id].in_use)
			break;
	if (id == client->nreqs)
	{
		if (client->nreqs == client->maxreqs)
		{
			client->maxreqs *= 2;
			client->reqs = repalloc(client->reqs, sizeof(HttpRequest) * client->maxreqs);
		}
		client->nreqs++;
	}
	req = &client->reqs[id];
	memset(req, 0, sizeof(HttpRequest));
	req->in_use = true;
	req->seq = client->next_seq++;
	req->path = MemoryContextStrdup(client->req_cxt, path);
	return id;
}

/*
 * Start what may start, move transfers along, and collect finished ones.
 * Returns the earliest time something waiting may start (or PG_INT64_MAX),
 * and the number of transfers running in *running.
 */
static int64
http_step(ClerkHttpClient *client, int *running)
{
	int64		now = now_ms();
	int64		wake = PG_INT64_MAX;
	int			nrunning = 0;
	int64		shared_at;
	int			still;
	int			i;
	CURLMsg    *msg;
	int			nmsg;

	for (i = 0; i < client->concurrency; i++)
		if (client->slots[i].request >= 0)
			nrunning++;
	/* requests start in the order they were submitted, as the window and the rate limit allow */
	while (nrunning < client->window)
	{
		int			best = -1;
		int			s;

		for (i = 0; i < client->nreqs; i++)
		{
			HttpRequest *req = &client->reqs[i];
			int64		at;

			if (!req->in_use || req->done || req->running)
				continue;
			at = Max(req->ready_at, client->pause_until);
			if (at > now)
			{
				wake = Min(wake, at);
				continue;
			}
			if (best < 0 || req->seq < client->reqs[best].seq)
				best = i;
		}
		if (best < 0)
			break;
		if (rate_permit_at(client) > now)
		{
			client->stats.rate_limit_waits++;
			wake = Min(wake, rate_permit_at(client));
			break;
		}
		/* and under the budget this database's other processes share */
		shared_at = clerk_rate_budget_take(client->rate_limit, now);
		if (shared_at > now)
		{
			client->stats.rate_limit_waits++;
			wake = Min(wake, shared_at);
			break;
		}
		for (s = 0; client->slots[s].request >= 0; s++)
			;
		start_request(client, &client->slots[s], best, &client->reqs[best], now);
		nrunning++;
	}

	if (nrunning > 0)
	{
		curl_multi_perform(client->multi, &still);
		while ((msg = curl_multi_info_read(client->multi, &nmsg)) != NULL)
		{
			HttpSlot   *slot;
			int			r;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
			r = slot->request;
			finish_transfer(client, slot, msg->data.result, &client->reqs[r],
							&client->reqs[r].result, now_ms());
			if (!client->reqs[r].done)
				wake = Min(wake, client->reqs[r].ready_at);
			nrunning--;
		}
	}
	*running = nrunning;
	return wake;
}

void
clerk_http_pump(ClerkHttpClient *client)
{
	int			running;

	(void) http_step(client, &running);
}

int
clerk_http_wait_any(ClerkHttpClient *client, const int *ids, int n)
{
	return clerk_http_wait_any_or_latch(client, ids, n, false);
}

int
clerk_http_wait_any_or_latch(ClerkHttpClient *client, const int *ids, int n, bool latch)
{
	for (;;)
	{
		int			running;
		int64		wake;

		if (latch && MyLatch->is_set)
			return -1;
		for (int i = 0; i < n; i++)
		{
			Assert(client->reqs[ids[i]].in_use);
			if (client->reqs[ids[i]].done)
				return i;
		}
		http_check_interrupts();
		wake = http_step(client, &running);
		for (int i = 0; i < n; i++)
			if (client->reqs[ids[i]].done)
				return i;
		if (running == 0)
		{
			/* everything left is waiting for its time */
			int64		now = now_ms();

			http_sleep(wake == PG_INT64_MAX ? CLERK_HTTP_TICK_MS : Max(wake - now, 1), latch);
		}
		else
		{
			int			timeout = CLERK_HTTP_TICK_MS;

			if (wake != PG_INT64_MAX)
				timeout = (int) Max(1, Min(timeout, wake - now_ms()));
			curl_multi_poll(client->multi, NULL, 0, timeout, NULL);
		}
	}
}

void
clerk_http_wait(ClerkHttpClient *client, int id, ClerkHttpResult *result)
{
	(void) clerk_http_wait_any(client, &id, 1);
	*result = client->reqs[id].result;
}

bool
clerk_http_poll(ClerkHttpClient *client, int id, ClerkHttpResult *result)
{
	Assert(client->reqs[id].in_use);
	clerk_http_pump(client);
	if (!client->reqs[id].done)
		return false;
	*result = client->reqs[id].result;
	return true;
}

void
clerk_http_release(ClerkHttpClient *client, int id)
{
	HttpRequest *req = &client->reqs[id];
	int			i;

	if (!req->in_use)
		return;
	if (req->running)
	{
		/* still in flight: stop the transfer */
		for (i = 0; i < client->concurrency; i++)
			if (client->slots[i].request == id)
			{
				curl_multi_remove_handle(client->multi, client->slots[i].easy);
				client->slots[i].request = -1;
				client->slots[i].len = 0;
			}
	}
	if (req->result.body)
		pfree(req->result.body);
	if (req->result.error)
		pfree(req->result.error);
	pfree(req->path);
	if (req->body)
		pfree(req->body);
	memset(req, 0, sizeof(HttpRequest));
	/* nothing left: start the answers' memory afresh */
	for (i = 0; i < client->nreqs; i++)
		if (client->reqs[i].in_use)
			return;
	client->nreqs = 0;
	MemoryContextReset(client->req_cxt);
}
