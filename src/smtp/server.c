/* The SMTP/LMTP server: accepting sessions, connection limits, draining. */
#include "smtp/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/wflush.h"
#include "queue/cleanup.h"
#include "smtp/session.h"
#include "util/log.h"
#include "util/xalloc.h"

struct smtp_server {
	const struct smtp_context *ctx;
	struct session *sessions;
	unsigned count;
	bool draining;
};

struct smtp_server *smtp_server_new(const struct smtp_context *ctx)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));
	srv->ctx = ctx;
	return srv;
}

static void smtp_server_addr(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
	else
		snprintf(out, len, "unix");
}

static unsigned smtp_server_count_ip(const struct smtp_server *srv, const char *addr)
{
	unsigned n = 0;
	for (const struct session *s = srv->sessions; s != NULL; s = s->next)
		n += strcmp(s->addr, addr) == 0;
	return n;
}

/* Over a limit the client gets a 421 written straight to the socket: no session is built for
   a connection that is going to be closed anyway. */
static bool smtp_server_refuse(struct smtp_server *srv, int fd, const char *addr, bool is_unix)
{
	const struct config *conf = srv->ctx->conf;
	const char *why = NULL;
	if (srv->draining)
		why = "421 4.3.2 Service shutting down\r\n";
	else if (srv->count >= (unsigned)conf->smtp_max_connections)
		why = "421 4.7.0 Error: too many connections\r\n";
	else if (!is_unix && smtp_server_count_ip(srv, addr) >= (unsigned)conf->smtp_max_connections_per_ip)
		why = "421 4.7.0 Error: too many connections from your address\r\n";
	if (why == NULL)
		return false;
	log_warn("refused connection from [%s]: %.*s", addr, (int)strlen(why) - 2, why);
	if (write(fd, why, strlen(why)) < 0) {
		/* The client is gone already. */
	}
	close(fd);
	return true;
}

void smtp_server_accept(struct smtp_server *srv, int fd, const struct sockaddr *sa, int salen,
			bool lmtp)
{
	char addr[64];
	smtp_server_addr(sa, addr, sizeof(addr));
	bool is_unix = sa->sa_family == AF_UNIX;
	if (smtp_server_refuse(srv, fd, addr, is_unix))
		return;
	struct session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->ctx = srv->ctx;
	s->lmtp = lmtp;
	s->local_client = is_unix;
	memcpy(&s->sa, sa, (size_t)salen < sizeof(s->sa) ? (size_t)salen : sizeof(s->sa));
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->count++;
	log_info("connect from [%s]%s", s->addr, lmtp ? " (LMTP)" : "");
	session_setup_io(s, fd);
	session_greet(s);
}

bool smtp_server_draining(const struct smtp_server *srv)
{
	return srv->draining;
}

static void session_log_disconnect(const struct session *s)
{
	const struct session_counts *c = &s->counts;
	unsigned total = c->helo + c->ehlo + c->mail + c->rcpt + c->data + c->rset + c->quit +
			 c->starttls + c->other;
	log_info("disconnect from [%s] ehlo=%u helo=%u starttls=%u mail=%u rcpt=%u data=%u rset=%u "
		 "quit=%u other=%u commands=%u errors=%u",
		 s->addr, c->ehlo, c->helo, c->starttls, c->mail, c->rcpt, c->data, c->rset, c->quit,
		 c->other, total, c->errors_total);
}

void smtp_server_unlink(struct smtp_server *srv, struct session *s)
{
	session_log_disconnect(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->count--;
	session_reset_tx(s);
	event_free(s->timer);
	wflush_free(&s->wf);
	bufferevent_free(s->bev);
	free(s);
}

void smtp_server_drain(struct smtp_server *srv)
{
	srv->draining = true;
	for (struct session *s = srv->sessions; s != NULL; s = s->next) {
		s->draining = true;
		if (s->state == SESSION_COMMAND && !s->in_tx) {
			session_reply(s, 421, "4.3.2", "%s Service shutting down", srv->ctx->hostname);
			session_close(s);
		}
	}
}

unsigned smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->count;
}

void smtp_server_free(struct smtp_server **srvp)
{
	struct smtp_server *srv = *srvp;
	if (srv == NULL)
		return;
	while (srv->sessions != NULL)
		smtp_server_unlink(srv, srv->sessions);
	xfree(srvp);
}
