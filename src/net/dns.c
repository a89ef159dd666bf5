#include "net/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <event2/event.h>
#include <event2/util.h>

#include "util/log.h"
#include "util/xalloc.h"

/* Two rounds over the servers; c-ares doubles the timeout for the second, so with one silent
   server the caller hears DNS_TEMPFAIL after about three timeouts. */
#define DNS_TRIES 2

enum dns_kind { DNS_KIND_MX, DNS_KIND_ADDR };

/* One socket c-ares asked us to watch, with the event that watches it. */
struct dns_sock {
	struct dns_sock *next;
	ares_socket_t fd;
	short what;
	struct event *ev;
};

/* One half of an address lookup: the AAAA query (slot 0) or the A query (slot 1). */
struct dns_half {
	struct dns_req *req;
	int family;
	enum dns_status status;
	size_t n;
};

struct dns_req {
	struct dns_req *prev, *next; /* dns->reqs: every lookup whose callback has not run */
	struct dns *dns;
	struct event *done; /* made active once the answer is ready: callbacks run from the loop */
	enum dns_kind kind;
	enum dns_status status;
	int outstanding; /* c-ares queries still running */
	void *arg;
	union {
		dns_mx_cb *mx;
		dns_addr_cb *addr;
	} cb;
	size_t n;
	union {
		struct dns_mx mx[DNS_MAX_MX];
		struct {
			int port;
			struct dns_half half[2];
			/* Each half fills its own DNS_MAX_ADDRS slots; the A answers are moved up
			   behind the AAAA answers when both are in, which puts IPv6 first. */
			struct sockaddr_storage addrs[2 * DNS_MAX_ADDRS];
		} a;
	} u;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer; /* c-ares retries and timeouts */
	struct dns_sock *socks;
	struct dns_req *reqs;
	bool closing;
};

static struct event *dns_event_new(struct event_base *base, evutil_socket_t fd, short what,
				   event_callback_fn cb, void *arg)
{
	struct event *ev = event_new(base, fd, what, cb, arg);
	if (ev == NULL)
		log_panic("dns: event_new failed");
	return ev;
}

/* ---- c-ares on the libevent loop ---- */

static void dns_timer_update(struct dns *dns)
{
	struct timeval tv;
	if (ares_timeout(dns->channel, NULL, &tv) == NULL)
		evtimer_del(dns->timer);
	else
		evtimer_add(dns->timer, &tv);
}

static void dns_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(dns);
}

/* The arg is the resolver, not the dns_sock: c-ares may close this very socket (and we free
   its dns_sock) inside ares_process_fd. */
static void dns_sock_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	ares_process_fd(dns->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(dns);
}

static struct dns_sock **dns_sock_find(struct dns *dns, ares_socket_t fd)
{
	struct dns_sock **pp = &dns->socks;
	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	return pp;
}

/* c-ares reports a socket opened, its interest changed, or closed (neither readable nor
   writable). Replacing the event is simpler than modifying it, and safe inside its callback. */
static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	struct dns_sock **pp = dns_sock_find(dns, fd);
	struct dns_sock *s = *pp;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	if (s != NULL && s->what == what)
		return;
	if (s != NULL) {
		event_free(s->ev);
		if (what == 0) {
			*pp = s->next;
			free(s);
			return;
		}
	} else if (what == 0) {
		return;
	} else {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = dns->socks;
		dns->socks = s;
	}
	s->what = what;
	s->ev = dns_event_new(dns->base, fd, what | EV_PERSIST, dns_sock_ready, dns);
	event_add(s->ev, NULL);
}

/* ---- requests ---- */

static void dns_req_call(struct dns_req *req, enum dns_status status)
{
	bool ok = status == DNS_OK;
	size_t n = ok ? req->n : 0;
	if (req->kind == DNS_KIND_MX)
		req->cb.mx(req->arg, status, ok ? req->u.mx : NULL, n);
	else
		req->cb.addr(req->arg, status, ok ? req->u.a.addrs : NULL, n);
}

static void dns_req_unlink(struct dns_req *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		req->dns->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
}

static void dns_req_free(struct dns_req *req)
{
	event_free(req->done);
	free(req);
}

/* Runs on the loop, never inside c-ares, so the callback may start lookups or even dns_free
   the resolver; nothing here touches req->dns after the callback. */
static void dns_req_dispatch(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *req = arg;
	dns_req_unlink(req);
	dns_req_call(req, req->status);
	dns_req_free(req);
}

static struct dns_req *dns_req_new(struct dns *dns, enum dns_kind kind, void *arg)
{
	if (dns->closing)
		log_panic("dns: lookup started on a resolver being freed");
	struct dns_req *req = xcalloc(1, sizeof(*req));
	req->dns = dns;
	req->kind = kind;
	req->arg = arg;
	req->done = dns_event_new(dns->base, -1, 0, dns_req_dispatch, req);
	req->next = dns->reqs;
	if (dns->reqs != NULL)
		dns->reqs->prev = req;
	dns->reqs = req;
	return req;
}

/* The answer is in req->status (and req->n, req->u). While the resolver is being freed the
   answer is dropped: dns_free calls every remaining callback with DNS_CANCELLED itself. */
static void dns_req_finish(struct dns_req *req, enum dns_status status)
{
	req->status = status;
	if (!req->dns->closing)
		event_active(req->done, EV_TIMEOUT, 1);
}

static enum dns_status dns_status_from_ares(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND: /* NXDOMAIN */
	case ARES_EBADNAME:  /* no such name can exist */
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return DNS_CANCELLED;
	default: /* timeout, SERVFAIL, REFUSED, ECONNREFUSED, bad reply, out of memory... */
		return DNS_TEMPFAIL;
	}
}

/* Copies name lower-cased and without its trailing dot, the form compared everywhere else;
   returns -1 when nothing is left or it does not fit. */
static int dns_name_copy(char *out, size_t size, const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len >= size)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

/* ---- MX ---- */

static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	return (int)x->preference - (int)y->preference;
}

/* RFC 5321 5.1: hosts of equal preference are tried in random order, spreading the load. */
static void dns_mx_shuffle_ties(struct dns_mx *mx, size_t n)
{
	size_t start = 0;
	while (start < n) {
		size_t end = start + 1;
		while (end < n && mx[end].preference == mx[start].preference)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			uint32_t r;
			evutil_secure_rng_get_bytes(&r, sizeof(r));
			size_t j = start + r % (i - start + 1);
			struct dns_mx t = mx[i];
			mx[i] = mx[j];
			mx[j] = t;
		}
		start = end;
	}
}

/* Copies the usable records of list into an array; *null_r says a root target ("." or "",
   depending on the c-ares version) was seen. */
static struct dns_mx *dns_mx_collect(const struct ares_mx_reply *list, size_t *n_r, bool *null_r)
{
	size_t count = 0;
	for (const struct ares_mx_reply *r = list; r != NULL; r = r->next)
		count++;
	struct dns_mx *all = xcalloc(count, sizeof(*all));
	size_t n = 0;
	*null_r = false;
	for (const struct ares_mx_reply *r = list; r != NULL; r = r->next) {
		if (r->host[0] == '\0' || strcmp(r->host, ".") == 0)
			*null_r = true;
		else if (dns_name_copy(all[n].host, sizeof(all[n].host), r->host) == 0)
			all[n++].preference = r->priority;
	}
	*n_r = n;
	return all;
}

/* A lone root target is RFC 7505's null MX. A root target beside real hosts breaks RFC 7505
   section 3; it cannot be delivered to, so it is dropped and the real hosts are used. */
static enum dns_status dns_mx_parse(struct dns_req *req, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list;
	int rc = ares_parse_mx_reply(abuf, alen, &list);
	if (rc != ARES_SUCCESS)
		return dns_status_from_ares(rc);
	size_t n;
	bool null_seen;
	struct dns_mx *all = dns_mx_collect(list, &n, &null_seen);
	ares_free_data(list);
	if (n == 0) {
		free(all);
		/* No null MX, only names too long to hold: a broken zone, maybe fixed soon. */
		return null_seen ? DNS_NULLMX : DNS_TEMPFAIL;
	}
	qsort(all, n, sizeof(*all), dns_mx_cmp);
	dns_mx_shuffle_ties(all, n);
	req->n = n < DNS_MAX_MX ? n : DNS_MAX_MX;
	memcpy(req->u.mx, all, req->n * sizeof(*all));
	free(all);
	return DNS_OK;
}

static void dns_mx_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *req = arg;
	if (status == ARES_SUCCESS)
		dns_req_finish(req, dns_mx_parse(req, abuf, alen));
	else
		dns_req_finish(req, dns_status_from_ares(status));
}

void dns_lookup_mx(struct dns *dns, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_req *req = dns_req_new(dns, DNS_KIND_MX, arg);
	char name[256];
	req->cb.mx = cb;
	if (dns_name_copy(name, sizeof(name), domain) < 0) {
		dns_req_finish(req, DNS_NXDOMAIN);
		return;
	}
	/* ares_query, not ares_search: a mail domain is always absolute, and the local search
	   list must never turn example.com into example.com.corp.lan. */
	ares_query(dns->channel, name, ns_c_in, ns_t_mx, dns_mx_answer, req);
	dns_timer_update(dns);
}

/* ---- addresses ---- */

static void dns_addr_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static void dns_addr_collect(struct dns_half *half, const struct ares_addrinfo *res)
{
	struct dns_req *req = half->req;
	size_t first = half == &req->u.a.half[0] ? 0 : DNS_MAX_ADDRS;
	struct sockaddr_storage *slots = req->u.a.addrs + first;
	for (const struct ares_addrinfo_node *ai = res->nodes; ai != NULL; ai = ai->ai_next) {
		if (half->n == DNS_MAX_ADDRS)
			break;
		if (ai->ai_family != half->family || ai->ai_addrlen > sizeof(*slots))
			continue;
		memcpy(&slots[half->n], ai->ai_addr, ai->ai_addrlen);
		dns_addr_set_port(&slots[half->n], req->u.a.port);
		half->n++;
	}
}

/* Any address is an answer (a failed AAAA query must not hold back working IPv4); with none,
   a temporary failure of either half wins over the permanent verdicts, so mail is deferred
   rather than bounced on half an answer. */
static enum dns_status dns_addr_combine(struct dns_req *req)
{
	const struct dns_half *v6 = &req->u.a.half[0], *v4 = &req->u.a.half[1];
	if (v6->n + v4->n > 0) {
		size_t n4 = v4->n < DNS_MAX_ADDRS - v6->n ? v4->n : DNS_MAX_ADDRS - v6->n;
		memmove(req->u.a.addrs + v6->n, req->u.a.addrs + DNS_MAX_ADDRS,
			n4 * sizeof(req->u.a.addrs[0]));
		req->n = v6->n + n4;
		return DNS_OK;
	}
	if (v6->status == DNS_TEMPFAIL || v4->status == DNS_TEMPFAIL)
		return DNS_TEMPFAIL;
	if (v6->status == DNS_NXDOMAIN && v4->status == DNS_NXDOMAIN)
		return DNS_NXDOMAIN;
	return DNS_NODATA;
}

static void dns_addr_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_half *half = arg;
	struct dns_req *req = half->req;
	half->status = dns_status_from_ares(status);
	if (res != NULL) {
		if (status == ARES_SUCCESS)
			dns_addr_collect(half, res);
		ares_freeaddrinfo(res);
	}
	if (--req->outstanding == 0)
		dns_req_finish(req, dns_addr_combine(req));
}

/* An IP literal, bare or in brackets, with RFC 5321's "IPv6:" tag or without; returns 1 and
   fills *ss when host is one. */
static int dns_addr_literal(const char *host, struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= 5 && strncasecmp(host, "IPv6:", 5) == 0) {
		host += 5;
		len -= 5;
	}
	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, host, len);
	buf[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1)
		ss->ss_family = AF_INET6;
	else if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1)
		ss->ss_family = AF_INET;
	return ss->ss_family != 0;
}

/* A name in brackets without an IP inside ("[mx.example]", a relay host spelled Postfix-style)
   is looked up without the brackets. */
static int dns_addr_name(char *out, size_t size, const char *host)
{
	size_t len = strlen(host);
	char buf[256];
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		if (len - 2 >= sizeof(buf))
			return -1;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	return dns_name_copy(out, size, host);
}

/* Two ares_getaddrinfo calls, one per family, rather than one AF_UNSPEC call: c-ares 1.18 then
   reports only the status of whichever query ended last, so a timed-out A query beside an empty
   AAAA answer would read as a permanent "no data". */
static void dns_addr_query(struct dns *dns, struct dns_req *req, const char *name)
{
	static const int families[2] = { AF_INET6, AF_INET };
	req->outstanding = 2; /* before either call: an /etc/hosts answer comes back at once */
	for (int i = 0; i < 2; i++) {
		struct dns_half *half = &req->u.a.half[i];
		/* NOSORT: RFC 6724 sorting opens a socket per address, and the order we
		   promise (IPv6 first) is made by the two halves anyway. */
		struct ares_addrinfo_hints hints = { .ai_flags = ARES_AI_NOSORT,
						     .ai_family = families[i],
						     .ai_socktype = SOCK_STREAM };
		half->req = req;
		half->family = families[i];
		ares_getaddrinfo(dns->channel, name, NULL, &hints, dns_addr_answer, half);
	}
	dns_timer_update(dns);
}

void dns_lookup_addr(struct dns *dns, const char *host, int port, dns_addr_cb *cb, void *arg)
{
	if (port < 0 || port > 65535)
		log_panic("dns_lookup_addr: port %d out of range", port);
	struct dns_req *req = dns_req_new(dns, DNS_KIND_ADDR, arg);
	char name[256];
	req->cb.addr = cb;
	req->u.a.port = port;
	if (dns_addr_literal(host, &req->u.a.addrs[0])) {
		dns_addr_set_port(&req->u.a.addrs[0], port);
		req->n = 1;
		dns_req_finish(req, DNS_OK);
	} else if (dns_addr_name(name, sizeof(name), host) < 0) {
		dns_req_finish(req, DNS_NXDOMAIN);
	} else {
		dns_addr_query(dns, req, name);
	}
}

/* ---- the resolver ---- */

/* c-ares 1.18 parses "ip", "ip:port" and "[ipv6]:port" but not the blanks a configuration
   list has after its commas. */
static int dns_servers_set(ares_channel channel, const char *servers)
{
	char *csv = xstrdup(servers);
	size_t n = 0;
	for (const char *p = servers; *p != '\0'; p++)
		if (*p != ' ' && *p != '\t')
			csv[n++] = *p;
	csv[n] = '\0';
	int rc = ares_set_servers_ports_csv(channel, csv);
	free(csv);
	return rc;
}

static int dns_channel_init(struct dns *dns, const char *servers, int timeout_ms,
			    const char **error_r)
{
	/* No search domains: every name we look up is a fully qualified mail host. */
	struct ares_options opts = {
		.timeout = timeout_ms,
		.tries = DNS_TRIES,
		.ndomains = 0,
		.sock_state_cb = dns_sock_state,
		.sock_state_cb_data = dns,
	};
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_SOCK_STATE_CB;
	int rc = ares_init_options(&dns->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		*error_r = ares_strerror(rc);
		return -1;
	}
	bool custom = servers != NULL && servers[0] != '\0';
	if (custom && dns_servers_set(dns->channel, servers) != ARES_SUCCESS) {
		*error_r = "invalid DNS servers (want ip, ip:port or [ipv6]:port, comma-separated)";
		ares_destroy(dns->channel);
		return -1;
	}
	return 0;
}

struct dns *dns_new(struct event_base *base, const char *servers, int timeout_ms,
		    const char **error_r)
{
	if (timeout_ms <= 0) {
		*error_r = "DNS timeout must be positive";
		return NULL;
	}
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		*error_r = ares_strerror(rc);
		return NULL;
	}
	struct dns *dns = xcalloc(1, sizeof(*dns));
	dns->base = base;
	if (dns_channel_init(dns, servers, timeout_ms, error_r) < 0) {
		free(dns);
		ares_library_cleanup();
		return NULL;
	}
	dns->timer = dns_event_new(base, -1, 0, dns_timer_fired, dns);
	return dns;
}

/* ares_destroy ends every query (our c-ares callbacks see EDESTRUCTION, or a late success,
   and keep quiet because of closing) and closes its sockets through dns_sock_state; then every
   lookup not yet called back, answered or not, hears DNS_CANCELLED exactly once. */
void dns_free(struct dns **dnsp)
{
	struct dns *dns = *dnsp;
	if (dns == NULL)
		return;
	*dnsp = NULL;
	dns->closing = true;
	ares_destroy(dns->channel);
	while (dns->socks != NULL)
		dns_sock_state(dns, dns->socks->fd, 0, 0);
	event_free(dns->timer);
	while (dns->reqs != NULL) {
		struct dns_req *req = dns->reqs;
		dns_req_unlink(req);
		dns_req_call(req, DNS_CANCELLED);
		dns_req_free(req);
	}
	free(dns);
	ares_library_cleanup();
}
