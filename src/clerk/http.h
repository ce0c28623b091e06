/*
 * http.h
 *		libcurl client for the Clerk Backend API: reused connections, several
 *		requests in flight, pacing, retries and Retry-After.
 */
#ifndef CLERK_HTTP_H
#define CLERK_HTTP_H

#include "datatype/timestamp.h"

typedef struct ClerkHttpClient ClerkHttpClient;

/* What a client is told when it is made (copied; the key is zeroed on free). */
typedef struct ClerkHttpConfig
{
	const char *api_url;		/* base URL, without a trailing slash needed */
	const char *proxy;			/* a proxy URL, or "" or NULL for none */
	const char *secret_key;
	int			timeout_ms;
	int			max_retries;
	int			retry_backoff_ms;
	int			rate_limit;		/* requests per 10 s */
	int			concurrency;
} ClerkHttpConfig;

/* Counters a run reports. */
typedef struct ClerkHttpStats
{
	int64		requests;		/* requests sent, retries included */
	int64		retries;
	int64		rate_limited;	/* 429 answers received */
	int64		rate_limit_waits;	/* times our own pacing made us wait */
	int64		bytes;
	/* adaptive concurrency: requests allowed in flight now, at most, and the peak */
	int			concurrency;
	int			concurrency_max;
	int			concurrency_peak;
	int64		backoffs;		/* times the concurrency was cut (429 or rising latency) */
} ClerkHttpStats;

/*
 * The outcome of one logical request (after any retries).  error is NULL
 * when an HTTP answer arrived that is not a retryable failure; status then
 * says which.  body is palloc'd and NUL-terminated.
 */
typedef struct ClerkHttpResult
{
	long		status;
	char	   *body;
	size_t		len;
	double		latency_ms;		/* of the last attempt */
	TimestampTz sent_at;		/* when the last attempt was sent */
	char	   *error;			/* NULL, or why no usable answer came */
	int			sqlerrcode;		/* with error: the SQLSTATE by cause */
	int64		retry_after_ms; /* a 429's wait (Retry-After, or a backoff); else 0 */
} ClerkHttpResult;

/*
 * Called at least every 100 ms while requests are in flight or waiting;
 * may ereport(ERROR) to abort (the client is cleaned up either way).
 */
typedef void (*ClerkHttpInterruptCheck) (void);
extern ClerkHttpInterruptCheck clerk_http_interrupt_check;

/*
 * Make a client whose curl resources live until `mcxt` is reset or deleted
 * (a reset callback frees them, so no error path leaks them).
 */
extern ClerkHttpClient *clerk_http_create(MemoryContext mcxt, const ClerkHttpConfig *config);
extern void clerk_http_destroy(ClerkHttpClient *client);

/*
 * GET base_url + paths[i] for every i, up to `concurrency` at a time,
 * retrying as configured; results[i] receives each outcome, allocated in
 * CurrentMemoryContext.  Never throws for an HTTP or network failure
 * (results say so); throws on interrupt.
 */
extern void clerk_http_get_many(ClerkHttpClient *client, int n, char **paths,
								ClerkHttpResult *results);

/*
 * The same, one request at a time, so a caller can work while requests are
 * in flight: submit queues a GET and returns its id; pump moves transfers
 * along without waiting (call it between other work); wait blocks until
 * request `id` is done and fills *result (whose memory stays the client's
 * until release); release forgets the request, stopping it if still in
 * flight.  A request whose latency is expected to vary with what it asks
 * for (a page at a deep offset) is submitted as `varying`: its latency
 * tells nothing about congestion, so it never cuts the concurrency.  poll
 * is wait without waiting: false while request `id` is not done.
 */
extern int	clerk_http_submit(ClerkHttpClient *client, const char *path);
extern int	clerk_http_submit_varying(ClerkHttpClient *client, const char *path);

/*
 * A write: method ("POST", "PATCH", "PUT" or "DELETE") with a JSON body
 * (NULL: "{}", or none for DELETE), otherwise as clerk_http_submit.  It is
 * sent once: a failure, a 5xx or a 429 is its result (a 429 still pauses
 * the client's other requests for result.retry_after_ms), because only
 * the caller knows whether sending it again could apply it twice.  A 403
 * is an answer like any 4xx (Clerk's error); a 401 is an error as for a GET.
 * method must outlive the request (a string literal).
 */
extern int	clerk_http_submit_write(ClerkHttpClient *client, const char *method,
									const char *path, const char *body);
extern void clerk_http_pump(ClerkHttpClient *client);
extern void clerk_http_wait(ClerkHttpClient *client, int id, ClerkHttpResult *result);
extern bool clerk_http_poll(ClerkHttpClient *client, int id, ClerkHttpResult *result);
/* Wait until one of the n requests is done; returns its index in ids. */
extern int	clerk_http_wait_any(ClerkHttpClient *client, const int *ids, int n);
/* The same, returning -1 as soon as the process latch is set (left set: the caller resets it). */
extern int	clerk_http_wait_any_or_latch(ClerkHttpClient *client, const int *ids, int n, bool latch);
extern void clerk_http_release(ClerkHttpClient *client, int id);

/* One GET; see clerk_http_get_many. */
extern void clerk_http_get(ClerkHttpClient *client, const char *path, ClerkHttpResult *result);

/* ereport(ERROR) unless result is a 2xx answer; `what` names the request. */
extern void clerk_http_check(const ClerkHttpResult *result, const char *what);

extern const ClerkHttpStats *clerk_http_stats(ClerkHttpClient *client);

#endif							/* CLERK_HTTP_H */
