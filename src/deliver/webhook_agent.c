#include "deliver/webhook_agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtp/command.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#define WEBHOOK_SNIPPET_MAX 200
#define WEBHOOK_B64_CHUNK (3 * 16384) /* a multiple of 3, so chunks encode without padding */

/* One socket curl asked us to watch; listed so that free can release any curl forgot. */
struct webhook_sock {
	struct event *ev;
	struct webhook_sock *prev, *next;
};

struct webhook_job {
	struct webhook_job *next; /* in the waiting list */
	CURL *easy;
	struct curl_slist *headers;
	char *url, *id;
	struct buf body;
	char *fail;        /* the request could not be built: defer with this reason */
	size_t *indexes, n;
	delivery_done_cb *cb;
	void *arg;
	char status_line[128];
	char snippet[WEBHOOK_SNIPPET_MAX + 1];
	size_t snippet_len;
	char errbuf[CURL_ERROR_SIZE];
};

struct webhook_agent {
	struct event_base *base;
	CURLM *multi;
	struct event *timer, *kick;
	char *secret, *ca_file;
	long timeout_ms, connect_timeout_ms;
	size_t max;
	struct webhook_job **running; /* max slots, nrunning used */
	size_t nrunning;
	struct webhook_job *wait_head, **wait_tail;
	struct webhook_sock *socks;
};

static void webhook_check_done(struct webhook_agent *a);

/* ---- the JSON document ---- */

/* Jansson refuses invalid UTF-8; raw 8-bit header bytes then become '?' rather than vanish. */
static json_t *webhook_jstr(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	char *copy = xstrdup(s);
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

/* xtext (RFC 3461) or utf-8-addr-xtext (RFC 6533) decoded; kept as received when malformed. */
static json_t *webhook_xtext(const char *xt, bool utf8)
{
	size_t len = strlen(xt);
	char *dec = xmalloc(len + 1);
	int n = utf8 ? xtext_utf8addr_decode(xt, len, true, dec, len + 1) : xtext_decode(xt, len, dec, len + 1);
	json_t *j = webhook_jstr(n >= 0 ? dec : xt);
	free(dec);
	return j;
}

static json_t *webhook_orcpt(const char *orcpt)
{
	if (orcpt == NULL || orcpt[0] == '\0')
		return json_null();
	const char *semi = strchr(orcpt, ';');
	if (semi == NULL)
		return webhook_jstr(orcpt);
	bool utf8 = (size_t)(semi - orcpt) == 5 && strncasecmp(orcpt, "utf-8", 5) == 0;
	return webhook_xtext(semi + 1, utf8);
}

static json_t *webhook_rcpts(const struct delivery_request *req)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < req->nrcpts; i++) {
		const struct delivery_rcpt *r = &req->rcpts[i];
		json_array_append_new(arr, json_pack("{s:o,s:o}", "address", webhook_jstr(r->address),
						     "original_recipient", webhook_orcpt(r->orcpt)));
	}
	return arr;
}

/* RFC 2047 words decoded to UTF-8 by GMime, which leaves malformed words as they are. */
static char *webhook_header_decode(const char *raw)
{
	if (strstr(raw, "=?") == NULL)
		return xstrdup(raw);
	char *dec = g_mime_utils_header_decode_text(NULL, raw);
	if (dec == NULL)
		return xstrdup(raw);
	char *copy = xstrdup(dec);
	g_free(dec);
	return copy;
}

/* Returns a copy of b's contents without the white space around them. */
static char *webhook_trimmed(const struct buf *b)
{
	const char *s = buf_str(b);
	size_t len = b->len;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	return xstrndup(s, len);
}

static void webhook_header_add(json_t *arr, const struct buf *name, const struct buf *value)
{
	char *n = webhook_trimmed(name), *v = webhook_trimmed(value), *decoded = webhook_header_decode(v);
	json_array_append_new(arr, json_pack("{s:o,s:o}", "name", webhook_jstr(n), "value", webhook_jstr(decoded)));
	free(n);
	free(v);
	free(decoded);
}

/* The header section up to the first empty line (or a line that is no header field), each
   field unfolded: RFC 5322 2.2.3 unfolding removes the line breaks, keeping the white space. */
static json_t *webhook_headers(const char *msg, size_t len)
{
	json_t *arr = json_array();
	struct buf name = { 0 }, value = { 0 };
	bool have = false;
	for (size_t pos = 0; pos < len;) {
		const char *line = msg + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl != NULL);
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break;
		if ((line[0] == ' ' || line[0] == '\t') && have) {
			buf_append(&value, line, llen);
			continue;
		}
		if (have)
			webhook_header_add(arr, &name, &value);
		const char *colon = memchr(line, ':', llen);
		have = colon != NULL;
		if (!have)
			break;
		buf_reset(&name);
		buf_reset(&value);
		buf_append(&name, line, (size_t)(colon - line));
		buf_append(&value, colon + 1, llen - (size_t)(colon + 1 - line));
	}
	if (have)
		webhook_header_add(arr, &name, &value);
	buf_free(&name);
	buf_free(&value);
	return arr;
}

static json_t *webhook_base64(const char *msg, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += WEBHOOK_B64_CHUNK) {
		size_t n = len - i < WEBHOOK_B64_CHUNK ? len - i : WEBHOOK_B64_CHUNK;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, (const unsigned char *)msg + i, (int)n);
	}
	json_t *j = json_stringn_nocheck(out, o);
	free(out);
	return j;
}

/* The message in wire form. A read on the loop thread: queue files are local and already in
   the page cache when the queue manager hands them out. */
static char *webhook_read(const struct delivery_request *req, char **error_r)
{
	size_t len = (size_t)req->content_size, got = 0;
	char *msg = xmalloc(len + 1);
	while (got < len) {
		ssize_t n = pread(req->fd, msg + got, len - got, req->content_off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = xasprintf("cannot read the queue file: %s", n < 0 ? strerror(errno) : "short file");
			free(msg);
			return NULL;
		}
		got += (size_t)n;
	}
	msg[len] = '\0';
	return msg;
}

static int webhook_dump_cb(const char *data, size_t size, void *arg)
{
	buf_append(arg, data, size);
	return 0;
}

/* Appends the JSON document for req to out. Returns 0, or -1 with *error_r set. */
static int webhook_document(const struct delivery_request *req, struct buf *out, char **error_r)
{
	char *msg = webhook_read(req, error_r);
	if (msg == NULL)
		return -1;
	size_t len = (size_t)req->content_size;
	json_t *doc = json_object();
	json_object_set_new(doc, "queue_id", webhook_jstr(req->id != NULL ? req->id : ""));
	json_object_set_new(doc, "sender", webhook_jstr(req->sender != NULL ? req->sender : ""));
	json_object_set_new(doc, "recipients", webhook_rcpts(req));
	json_object_set_new(doc, "envid", req->envid != NULL ? webhook_xtext(req->envid, false) : json_null());
	json_object_set_new(doc, "size", json_integer((json_int_t)req->content_size));
	json_object_set_new(doc, "headers", webhook_headers(msg, len));
	json_object_set_new(doc, "message", webhook_base64(msg, len));
	free(msg);
	int rc = json_dump_callback(doc, webhook_dump_cb, out, JSON_COMPACT);
	json_decref(doc);
	if (rc != 0)
		log_panic("webhook: cannot serialise the JSON document");
	return 0;
}

/* ---- the HTTP request ---- */

static void webhook_slist_add(struct curl_slist **list, const char *s)
{
	struct curl_slist *l = curl_slist_append(*list, s);
	if (l == NULL)
		log_panic("curl_slist_append: out of memory");
	*list = l;
}

/* HMAC-SHA256(secret, ts "." body) as lowercase hex into hex (size hexlen). */
static void webhook_sign(const char *secret, const char *ts, const struct buf *body, char *hex, size_t hexlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = sizeof(md);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, (const unsigned char *)secret,
						     strlen(secret));
	if (ctx == NULL || key == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSignUpdate(ctx, ts, strlen(ts)) != 1 || EVP_DigestSignUpdate(ctx, ".", 1) != 1 ||
	    EVP_DigestSignUpdate(ctx, body->data, body->len) != 1 || EVP_DigestSignFinal(ctx, md, &mdlen) != 1)
		log_panic("webhook: HMAC-SHA256 failed");
	EVP_PKEY_free(key);
	EVP_MD_CTX_free(ctx);
	for (size_t i = 0; i < mdlen && 2 * i + 2 < hexlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* The headers, signed when the request starts rather than when it was queued, so that a
   request that waited for a slot does not arrive with a stale timestamp. */
static void webhook_job_headers(struct webhook_agent *a, struct webhook_job *j)
{
	char ts[32], line[160], hex[2 * EVP_MAX_MD_SIZE + 1] = "";
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	curl_slist_free_all(j->headers);
	j->headers = NULL;
	webhook_slist_add(&j->headers, "Content-Type: application/json");
	webhook_slist_add(&j->headers, "Expect:"); /* no 100-continue round trip */
	snprintf(line, sizeof(line), "X-Postern-Timestamp: %s", ts);
	webhook_slist_add(&j->headers, line);
	if (a->secret != NULL) {
		webhook_sign(a->secret, ts, &j->body, hex, sizeof(hex));
		snprintf(line, sizeof(line), "X-Postern-Signature: sha256=%s", hex);
		webhook_slist_add(&j->headers, line);
	}
}

/* Keeps the last status line ("HTTP/1.1 404 Not Found"), the final one after any 1xx. */
static size_t webhook_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct webhook_job *j = arg;
	size_t len = size * n, k = 0;
	if (len < 5 || memcmp(data, "HTTP/", 5) != 0)
		return len;
	while (k < len && k < sizeof(j->status_line) - 1 && data[k] != '\r' && data[k] != '\n') {
		j->status_line[k] = (unsigned char)data[k] < 0x20 || (unsigned char)data[k] >= 0x7f ? '?' : data[k];
		k++;
	}
	j->status_line[k] = '\0';
	return len;
}

/* Keeps the start of the response body for a bounce text, as printable ASCII: it ends up in
   logs, queue files and NDRs. */
static size_t webhook_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct webhook_job *j = arg;
	size_t len = size * n;
	for (size_t i = 0; i < len && j->snippet_len < WEBHOOK_SNIPPET_MAX; i++) {
		unsigned char c = (unsigned char)data[i];
		j->snippet[j->snippet_len++] = c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c;
	}
	j->snippet[j->snippet_len] = '\0';
	return len;
}

static CURL *webhook_easy(struct webhook_agent *a, struct webhook_job *j)
{
	CURL *e = curl_easy_init();
	if (e == NULL)
		log_panic("curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_URL, j->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, buf_str(&j->body));
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "postern/" POSTERN_VERSION);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, a->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, a->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (a->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, webhook_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	return e;
}

/* ---- results ---- */

static void webhook_job_free(struct webhook_job **jp)
{
	struct webhook_job *j = *jp;
	if (j == NULL)
		return;
	if (j->easy != NULL)
		curl_easy_cleanup(j->easy);
	curl_slist_free_all(j->headers);
	buf_free(&j->body);
	free(j->url);
	free(j->id);
	free(j->fail);
	free(j->indexes);
	free(j);
	*jp = NULL;
}

/* Gives every recipient tmpl's outcome, logs one line, and frees the job. */
static void webhook_report(struct webhook_job *j, const struct delivery_result *tmpl)
{
	static const char *const names[] = { "sent", "deferred", "bounced" };
	struct delivery_result *r = xcalloc(j->n > 0 ? j->n : 1, sizeof(*r));
	for (size_t i = 0; i < j->n; i++) {
		r[i] = *tmpl;
		r[i].index = j->indexes[i];
	}
	log_info("%s: url=%s, nrcpt=%zu, relay=%s, status=%s (%s)", j->id, j->url, j->n,
		 tmpl->remote_mta[0] != '\0' ? tmpl->remote_mta : "none", names[tmpl->status], tmpl->text);
	j->cb(j->arg, r, j->n);
	free(r);
	webhook_job_free(&j);
}

static const char *webhook_status_line(struct webhook_job *j, long http)
{
	if (j->status_line[0] == '\0')
		snprintf(j->status_line, sizeof(j->status_line), "HTTP %ld", http);
	return j->status_line;
}

static void webhook_classify_http(struct webhook_job *j, long http, struct delivery_result *r)
{
	const char *line = webhook_status_line(j, http), *sep = j->snippet_len > 0 ? ": " : "";
	if (http >= 200 && http <= 299)
		delivery_result_set(r, 0, DELIVERY_DONE, 250, "2.0.0", "webhook accepted: HTTP %ld", http);
	else if (http == 429 || (http >= 500 && http <= 599))
		delivery_result_set(r, 0, DELIVERY_DEFER, 451, "4.3.0", "webhook deferred: %s%s%s", line, sep,
				    j->snippet);
	else if (http >= 300 && http <= 499)
		delivery_result_set(r, 0, DELIVERY_BOUNCE, 550, "5.3.0", "webhook rejected%s: %s%s%s",
				    http < 400 ? " (redirects are not followed)" : "", line, sep, j->snippet);
	else
		delivery_result_set(r, 0, DELIVERY_DEFER, 451, "4.3.0", "webhook: unexpected reply %s", line);
}

/* No connection at all is 4.4.1 (no answer from host); a connection that broke or stalled is
   4.4.2 (bad connection); anything else (bad URL, TLS setup) is 4.3.0. */
static const char *webhook_curl_dsn(CURL *e, CURLcode rc)
{
	curl_off_t connected = 0;
	curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "4.4.1";
	case CURLE_OPERATION_TIMEDOUT:
		return connected == 0 ? "4.4.1" : "4.4.2";
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return "4.4.2";
	default:
		return "4.3.0";
	}
}

static void webhook_finish(struct webhook_job *j, CURLcode rc)
{
	struct delivery_result tmpl;
	long http = 0;
	char *ip = NULL;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
		webhook_classify_http(j, http, &tmpl);
	} else {
		delivery_result_set(&tmpl, 0, DELIVERY_DEFER, 451, webhook_curl_dsn(j->easy, rc), "webhook failed: %s",
				    j->errbuf[0] != '\0' ? j->errbuf : curl_easy_strerror(rc));
	}
	if (curl_easy_getinfo(j->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != NULL && ip[0] != '\0')
		snprintf(tmpl.remote_mta, sizeof(tmpl.remote_mta), "[%s]", ip);
	webhook_report(j, &tmpl);
}

static void webhook_defer(struct webhook_job *j, const char *why)
{
	struct delivery_result tmpl;
	delivery_result_set(&tmpl, 0, DELIVERY_DEFER, 451, "4.3.0", "webhook failed: %s", why);
	webhook_report(j, &tmpl);
}

/* ---- scheduling ---- */

static void webhook_running_remove(struct webhook_agent *a, struct webhook_job *j)
{
	curl_multi_remove_handle(a->multi, j->easy);
	for (size_t i = 0; i < a->nrunning; i++) {
		if (a->running[i] == j) {
			a->running[i] = a->running[--a->nrunning];
			return;
		}
	}
	log_panic("webhook: finished job %s is not running", j->id);
}

static struct webhook_job *webhook_wait_pop(struct webhook_agent *a)
{
	struct webhook_job *j = a->wait_head;
	if (j != NULL && (a->wait_head = j->next) == NULL)
		a->wait_tail = &a->wait_head;
	return j;
}

/* Starts waiting jobs while slots are free; jobs that could not be built report at once. */
static void webhook_start_waiting(struct webhook_agent *a)
{
	while (a->wait_head != NULL && (a->wait_head->fail != NULL || a->nrunning < a->max)) {
		struct webhook_job *j = webhook_wait_pop(a);
		if (j->fail != NULL) {
			webhook_defer(j, j->fail);
			continue;
		}
		webhook_job_headers(a, j);
		j->easy = webhook_easy(a, j);
		a->running[a->nrunning++] = j;
		CURLMcode mc = curl_multi_add_handle(a->multi, j->easy);
		if (mc != CURLM_OK) {
			webhook_running_remove(a, j);
			webhook_defer(j, curl_multi_strerror(mc));
		}
	}
}

static void webhook_check_done(struct webhook_agent *a)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(a->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct webhook_job *j = NULL;
		CURLcode rc = m->data.result; /* m dies with the handle's removal */
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		webhook_running_remove(a, j);
		webhook_finish(j, rc);
	}
	webhook_start_waiting(a);
}

/* ---- curl on the libevent loop ---- */

static void webhook_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_agent *a = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0), running;
	curl_multi_socket_action(a->multi, fd, flags, &running);
	webhook_check_done(a);
}

static void webhook_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_agent *a = arg;
	int running;
	curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	webhook_check_done(a);
}

static void webhook_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	webhook_start_waiting(arg);
}

static void webhook_sock_free(struct webhook_agent *a, struct webhook_sock *ws)
{
	event_free(ws->ev);
	if (ws->prev != NULL)
		ws->prev->next = ws->next;
	else
		a->socks = ws->next;
	if (ws->next != NULL)
		ws->next->prev = ws->prev;
	free(ws);
}

static int webhook_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct webhook_agent *a = userp;
	struct webhook_sock *ws = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (ws != NULL)
			webhook_sock_free(a, ws);
		curl_multi_assign(a->multi, s, NULL);
		return 0;
	}
	short events = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (ws == NULL) {
		ws = xcalloc(1, sizeof(*ws));
		ws->ev = event_new(a->base, s, events, webhook_event_cb, a);
		if ((ws->next = a->socks) != NULL)
			ws->next->prev = ws;
		a->socks = ws;
		curl_multi_assign(a->multi, s, ws);
	} else {
		event_del(ws->ev);
		event_assign(ws->ev, a->base, s, events, webhook_event_cb, a);
	}
	event_add(ws->ev, NULL);
	return 0;
}

/* Curl asks us not to drive it from inside this callback: the timer event does, on the loop. */
static int webhook_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhook_agent *a = userp;
	if (timeout_ms < 0) {
		evtimer_del(a->timer);
		return 0;
	}
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	evtimer_add(a->timer, &tv);
	return 0;
}

/* ---- public ---- */

/* Both libraries' global setup is not thread-safe, hence once, from the first agent. */
static void webhook_global_init(void)
{
	static bool done;
	if (done)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatal("webhook: curl_global_init failed");
	g_mime_init();
	done = true;
}

struct webhook_agent *webhook_agent_new(struct event_base *base, const struct webhook_options *opts)
{
	webhook_global_init();
	struct webhook_agent *a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->secret = opts->secret != NULL && opts->secret[0] != '\0' ? xstrdup(opts->secret) : NULL;
	a->ca_file = opts->ca_file != NULL ? xstrdup(opts->ca_file) : NULL;
	a->timeout_ms = 1000L * (opts->timeout_s > 0 ? opts->timeout_s : 30);
	a->connect_timeout_ms = 1000L * (opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 10);
	a->max = opts->max_concurrent > 0 ? opts->max_concurrent : 4;
	a->running = xcalloc(a->max, sizeof(*a->running));
	a->wait_tail = &a->wait_head;
	if ((a->multi = curl_multi_init()) == NULL)
		log_panic("curl_multi_init failed");
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, webhook_socket_cb);
	curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, webhook_timer_cb);
	curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
	a->timer = evtimer_new(base, webhook_timeout_cb, a);
	a->kick = evtimer_new(base, webhook_kick_cb, a);
	return a;
}

void webhook_agent_deliver(struct webhook_agent *a, const char *url, const struct delivery_request *req,
			   delivery_done_cb *cb, void *arg)
{
	struct webhook_job *j = xcalloc(1, sizeof(*j));
	j->url = xstrdup(url);
	j->id = xstrdup(req->id != NULL ? req->id : "-");
	j->cb = cb;
	j->arg = arg;
	j->n = req->nrcpts;
	j->indexes = xcalloc(j->n > 0 ? j->n : 1, sizeof(*j->indexes));
	for (size_t i = 0; i < j->n; i++)
		j->indexes[i] = req->rcpts[i].index;
	if (webhook_document(req, &j->body, &j->fail) < 0)
		buf_free(&j->body);
	*a->wait_tail = j;
	a->wait_tail = &j->next;
	/* Started from the loop, so that cb never runs inside this call. */
	event_active(a->kick, EV_TIMEOUT, 1);
}

size_t webhook_agent_pending(const struct webhook_agent *a)
{
	size_t n = a->nrunning;
	for (const struct webhook_job *j = a->wait_head; j != NULL; j = j->next)
		n++;
	return n;
}

void webhook_agent_free(struct webhook_agent **ap)
{
	struct webhook_agent *a = *ap;
	if (a == NULL)
		return;
	while (a->nrunning > 0) {
		struct webhook_job *j = a->running[a->nrunning - 1];
		webhook_running_remove(a, j);
		webhook_defer(j, "the agent stopped before the reply");
	}
	for (struct webhook_job *j; (j = webhook_wait_pop(a)) != NULL;)
		webhook_defer(j, j->fail != NULL ? j->fail : "the agent stopped before the request");
	curl_multi_cleanup(a->multi);
	while (a->socks != NULL)
		webhook_sock_free(a, a->socks);
	event_free(a->timer);
	event_free(a->kick);
	free(a->running);
	free(a->secret);
	free(a->ca_file);
	free(a);
	*ap = NULL;
}
