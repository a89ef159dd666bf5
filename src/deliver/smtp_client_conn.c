/* Client connections: non-blocking connect, the bufferevent and its callbacks, reading
   replies, the stage timer, STARTTLS, closing, and the cache of idle connections. */
#include "deliver/smtp_client_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "net/wflush.h"
#include "util/log.h"
#include "util/xalloc.h"

void smtp_client_conn_arm(struct smtp_client_conn *conn, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };
	evtimer_add(conn->timer, &tv);
}

void smtp_client_conn_send(struct smtp_client_conn *conn, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(conn->bev);
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

void smtp_client_conn_error(const struct smtp_client_conn *conn, const char *dsn,
			    struct smtp_client_error *e, const char *fmt, ...)
{
	va_list ap;
	memset(e, 0, sizeof(*e));
	snprintf(e->dsn, sizeof(e->dsn), "%s", dsn);
	snprintf(e->remote_mta, sizeof(e->remote_mta), "%s", conn->remote_mta);
	e->dsn_passed = conn->ext.dsn;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

void smtp_client_conn_reply_error(const struct smtp_client_conn *conn, const char *in_reply_to,
				  struct smtp_client_error *e)
{
	smtp_client_conn_error(conn, smtp_client_reply_dsn(&conn->reply), e, "%s", conn->reply.text);
	e->code = conn->reply.code;
	e->in_reply_to = in_reply_to;
}

/* Lost before a transaction: a reason to try the next address (4.4.1); during one: the
   recipients not yet final are deferred (4.4.2). */
static const char *conn_loss_dsn(const struct smtp_client_conn *conn)
{
	return conn->state < SMTP_CLIENT_MAIL ? "4.4.1" : "4.4.2";
}

static void conn_lost(struct smtp_client_conn *conn, int err)
{
	struct smtp_client_error e;
	if (conn->state == SMTP_CLIENT_CONNECTING) {
		smtp_client_conn_error(conn, "4.4.1", &e, "connect to %s: %s", conn->relay,
				       err != 0 ? strerror(err) : "Connection failed");
	} else if (conn->state == SMTP_CLIENT_HANDSHAKE) {
		unsigned long ssl_err = bufferevent_get_openssl_error(conn->bev);
		char reason[256] = "handshake failure";
		if (ssl_err != 0)
			ERR_error_string_n(ssl_err, reason, sizeof(reason));
		smtp_client_conn_error(conn, "4.7.5", &e, "Cannot start TLS with %s: %s", conn->relay,
				       reason);
	} else {
		smtp_client_conn_error(conn, conn_loss_dsn(conn), &e, "lost connection with %s while %s",
				       conn->relay, smtp_client_session_doing(conn));
	}
	smtp_client_session_fail(conn, &e);
}

/* Returns 1 when a whole reply is in conn->reply, 0 when more input is needed, -1 when the
   peer broke the reply syntax. */
static int conn_read_reply(struct smtp_client_conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	for (;;) {
		size_t eol = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
		if (p.pos < 0)
			return evbuffer_get_length(in) > SMTP_CLIENT_LINE_MAX ? -1 : 0;
		if (p.pos > SMTP_CLIENT_LINE_MAX)
			return -1;
		/* Only the start of a long line is kept: the text is cut to SMTP_CLIENT_TEXT_MAX
		   anyway, and the code and separator are at its beginning. */
		char line[SMTP_CLIENT_TEXT_MAX];
		size_t n = (size_t)p.pos < sizeof(line) - 1 ? (size_t)p.pos : sizeof(line) - 1;
		evbuffer_copyout(in, line, n);
		evbuffer_drain(in, (size_t)p.pos + eol);
		line[n] = '\0';
		int r = smtp_client_reply_line(&conn->reply, line, n);
		if (r != 0)
			return r;
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client_conn *conn = arg;
	while (conn->state != SMTP_CLIENT_DEAD && conn->state != SMTP_CLIENT_HANDSHAKE) {
		int r = conn_read_reply(conn);
		if (r == 0)
			return;
		if (r < 0) {
			struct smtp_client_error e;
			smtp_client_conn_error(conn, conn_loss_dsn(conn), &e,
					       "malformed reply from %s while %s", conn->relay,
					       smtp_client_session_doing(conn));
			smtp_client_session_fail(conn, &e);
			return;
		}
		smtp_client_session_reply(conn);
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client_conn *conn = arg;
	if (conn->state == SMTP_CLIENT_CONTENT)
		smtp_client_data_write(conn);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client_conn *conn = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (what & BEV_EVENT_CONNECTED) {
		if (conn->wf == NULL)
			conn->wf = wflush_new(bev); /* the TCP connect, before any TLS filter */
		smtp_client_session_connected(conn);
		return;
	}
	/* A reply may have come in with the close (a 421 before hanging up): it is read first. */
	if (what & BEV_EVENT_EOF) {
		conn_read_cb(bev, conn);
		if (conn->state == SMTP_CLIENT_DEAD)
			return;
	}
	conn_lost(conn, (what & BEV_EVENT_ERROR) ? err : 0);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client_conn *conn = arg;
	struct smtp_client_error e;
	switch (conn->state) {
	case SMTP_CLIENT_IDLE:
		smtp_client_conn_quit(conn);
		return;
	case SMTP_CLIENT_QUIT:
		smtp_client_conn_dispose(conn);
		return;
	case SMTP_CLIENT_CONNECTING:
		smtp_client_conn_error(conn, "4.4.1", &e, "connect to %s: Connection timed out", conn->relay);
		break;
	default:
		smtp_client_conn_error(conn, conn_loss_dsn(conn), &e, "conversation with %s timed out while %s",
				       conn->relay, smtp_client_session_doing(conn));
		break;
	}
	smtp_client_session_fail(conn, &e);
}

static void conn_link(struct smtp_client_conn *conn)
{
	struct smtp_client *c = conn->client;
	conn->next = c->conns;
	if (c->conns != NULL)
		c->conns->prev = conn;
	c->conns = conn;
}

static void conn_unlink(struct smtp_client_conn *conn)
{
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		conn->client->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
}

/* Names for logs and results: relay "host[addr]:port" (Postfix style), remote_mta the host
   name or "[addr]" when the host is itself an address. */
static void conn_names(struct smtp_client_conn *conn, const char *host, const struct sockaddr_storage *sa)
{
	snprintf(conn->host, sizeof(conn->host), "%s", host);
	if (sa->ss_family == AF_UNIX) {
		snprintf(conn->relay, sizeof(conn->relay), "%s", host);
		snprintf(conn->remote_mta, sizeof(conn->remote_mta), "%s", host);
		return;
	}
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &sin->sin_addr, conn->addr, sizeof(conn->addr));
	else
		inet_ntop(AF_INET6, &sin6->sin6_addr, conn->addr, sizeof(conn->addr));
	int port = ntohs(sa->ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
	snprintf(conn->relay, sizeof(conn->relay), "%s[%s]:%d", host, conn->addr, port);
	if (strcmp(host, conn->addr) == 0)
		snprintf(conn->remote_mta, sizeof(conn->remote_mta), "[%s]", conn->addr);
	else
		snprintf(conn->remote_mta, sizeof(conn->remote_mta), "%s", host);
}

static socklen_t conn_salen(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return sizeof(struct sockaddr_in);
	if (sa->ss_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	return sizeof(struct sockaddr_un);
}

/* The connect is ours, not bufferevent_socket_connect's: an immediate failure (the usual case
   on loopback) then keeps its errno for the error text. */
static int conn_socket(const struct sockaddr_storage *sa, int *err_r)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err_r = errno;
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)sa, conn_salen(sa)) < 0 && errno != EINPROGRESS &&
	    errno != EAGAIN) {
		*err_r = errno;
		close(fd);
		return -1;
	}
	return fd;
}

int smtp_client_conn_open(struct smtp_client_job *job, const char *host,
			  const struct sockaddr_storage *sa, bool no_starttls, struct smtp_client_error *e_r)
{
	struct smtp_client_conn *conn = xcalloc(1, sizeof(*conn));
	conn->client = job->client;
	conn->hop = job->hop;
	conn->no_starttls = no_starttls;
	conn->state = SMTP_CLIENT_CONNECTING;
	conn_names(conn, host, sa);
	conn_link(conn);
	snprintf(job->relay, sizeof(job->relay), "%s", conn->relay);
	int err = 0;
	int fd = conn_socket(sa, &err);
	if (fd < 0) {
		smtp_client_conn_error(conn, "4.4.1", e_r, "connect to %s: %s", conn->relay, strerror(err));
		smtp_client_conn_dispose(conn);
		return -1;
	}
	conn->job = job;
	job->conn = conn;
	conn->timer = evtimer_new(job->client->base, conn_timer_cb, conn);
	conn->bev = bufferevent_socket_new(job->client->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_setcb(conn->bev, conn_read_cb, conn_write_cb, conn_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	/* With no address, libevent waits for the socket to become writable and reports the
	   outcome of the connect started above. */
	bufferevent_socket_connect(conn->bev, NULL, 0);
	smtp_client_conn_arm(conn, job->client->opts.connect_timeout);
	return 0;
}

static bool conn_host_is_address(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Plaintext that arrived after the 220 to STARTTLS is thrown away: it could have been
   injected by a man in the middle and must not be taken as coming over TLS. */
int smtp_client_conn_start_tls(struct smtp_client_conn *conn)
{
	struct smtp_client *c = conn->client;
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = SSL_new(c->opts.tls);
	if (ssl == NULL)
		return -1;
	if (!conn_host_is_address(conn->host))
		SSL_set_tlsext_host_name(ssl, conn->host);
	/* On failure libevent has already freed ssl (or, out of memory, cannot). */
	struct bufferevent *tb = bufferevent_openssl_filter_new(c->base, conn->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
								BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL)
		return -1;
	/* Many servers close without close_notify after QUIT; that is not an attack here. */
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	conn->bev = tb;
	bufferevent_setcb(tb, conn_read_cb, conn_write_cb, conn_event_cb, conn);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	conn->state = SMTP_CLIENT_HANDSHAKE;
	smtp_client_conn_arm(conn, c->opts.helo_timeout);
	return 0;
}

void smtp_client_conn_quit(struct smtp_client_conn *conn)
{
	smtp_client_conn_send(conn, "QUIT");
	conn->state = SMTP_CLIENT_QUIT;
	smtp_client_conn_arm(conn, conn->client->opts.command_timeout);
}

void smtp_client_conn_dispose(struct smtp_client_conn *conn)
{
	if (conn->job != NULL) {
		conn->job->conn = NULL;
		conn->job = NULL;
	}
	wflush_free(&conn->wf);
	if (conn->bev != NULL)
		bufferevent_free(conn->bev);
	conn->bev = NULL;
	if (conn->timer != NULL)
		event_free(conn->timer);
	conn->timer = NULL;
	xfree(&conn->chunk);
	conn->state = SMTP_CLIENT_DEAD;
	event_active(conn->client->reaper, EV_TIMEOUT, 1);
}

/* A last QUIT for a healthy connection, written straight to the socket: there will be no
   further loop turn to flush it. libevent keeps the start of a socket bufferevent's output
   frozen outside its own callbacks; the connection is closed right after, so it is thawed.
   With TLS, the filter first encrypts into the socket's buffer. */
static void conn_quit_now(struct smtp_client_conn *conn)
{
	if (conn->state != SMTP_CLIENT_IDLE && conn->state != SMTP_CLIENT_RSET)
		return;
	smtp_client_conn_send(conn, "QUIT");
	bufferevent_flush(conn->bev, EV_WRITE, BEV_FLUSH);
	struct bufferevent *sock = bufferevent_get_underlying(conn->bev);
	if (sock == NULL)
		sock = conn->bev;
	struct evbuffer *out = bufferevent_get_output(sock);
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(sock));
}

void smtp_client_conn_destroy(struct smtp_client_conn *conn)
{
	if (conn->state != SMTP_CLIENT_DEAD) {
		conn_quit_now(conn);
		smtp_client_conn_dispose(conn);
	}
	conn_unlink(conn);
	free(conn);
}

static bool conn_same_hop(const struct smtp_nexthop *a, const struct smtp_nexthop *b)
{
	return a->lmtp == b->lmtp && a->mx == b->mx && a->unix_socket == b->unix_socket &&
	       a->port == b->port && a->tls == b->tls && strcmp(a->host, b->host) == 0;
}

struct smtp_client_conn *smtp_client_conn_take(struct smtp_client *c, const struct smtp_nexthop *hop)
{
	for (struct smtp_client_conn *conn = c->conns; conn != NULL; conn = conn->next) {
		if (conn->job != NULL || !conn_same_hop(&conn->hop, hop))
			continue;
		if (conn->state != SMTP_CLIENT_IDLE && conn->state != SMTP_CLIENT_RSET)
			continue;
		conn->reused = true;
		conn->got_reply = false;
		return conn;
	}
	return NULL;
}
