#ifndef POSTERN_WEBHOOK_AGENT_H
#define POSTERN_WEBHOOK_AGENT_H
#include <event2/event.h>

#include "deliver/delivery.h"

/* The webhook: delivery agent (DESIGN.md 1): each request becomes one HTTP POST of a JSON
   document to a URL, made with libcurl's multi interface on the libevent loop.

   The document (Content-Type: application/json) holds "queue_id", "sender", "recipients"
   ([{"address", "original_recipient"}], the latter xtext-decoded from ORCPT or null), "envid"
   (xtext-decoded, or null), "size", "headers" ([{"name", "value"}], unfolded, RFC 2047
   decoded) and "message" (the wire-form message, base64).

   Signing: X-Postern-Timestamp is the unix time in decimal, taken when the request starts (not
   when it was queued); X-Postern-Signature is
   "sha256=" + lowercase hex HMAC-SHA256(secret, TIMESTAMP "." BODY), where BODY is the exact
   request body bytes. Receivers should also reject stale timestamps.

   Results, the same for every recipient of a request: 2xx done; 429, 5xx, connection errors and
   timeouts defer; other 4xx bounce 5.3.0 with the status line and up to 200 bytes of the
   response body. Redirects are not followed (a 3xx bounces): a webhook URL that moved is an
   operator's change, and following it would send the message somewhere unconfigured. https
   always verifies the peer's certificate and name. */

struct webhook_agent;

struct webhook_options {
	const char *secret;          /* HMAC key; NULL or "" sends no signature header */
	unsigned timeout_s;          /* whole request; 0 means 30 */
	unsigned connect_timeout_s;  /* 0 means 10 */
	unsigned max_concurrent;     /* requests in flight; further ones wait; 0 means 4 */
	const char *ca_file;         /* extra CA bundle for https, NULL for the system's */
};

/* Returns a new agent on base. Calls curl_global_init and g_mime_init once per process, so the
   first call must come from the loop thread at startup, before other threads exist. */
struct webhook_agent *webhook_agent_new(struct event_base *base, const struct webhook_options *opts);
/* Posts req to url; cb gets one result per recipient, always later from the loop, never inside
   this call. req need only be valid during this call. */
void webhook_agent_deliver(struct webhook_agent *a, const char *url, const struct delivery_request *req,
			   delivery_done_cb *cb, void *arg);
/* Returns how many requests are in flight or waiting. */
size_t webhook_agent_pending(const struct webhook_agent *a);
/* Aborts every transfer, reporting its recipients deferred, then frees *a (NULL allowed) and
   sets it to NULL. Must not be called from inside a delivery callback. */
void webhook_agent_free(struct webhook_agent **a);

#endif
