/* Session I/O: reading command lines, replies, timeouts, STARTTLS and closing. */
#include "smtp/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/tls.h"
#include "net/wflush.h"
#include "util/log.h"

/* A client that pipelines without reading its replies is paused beyond this much output. */
#define SESSION_OUTPUT_MAX (1024 * 1024)

static void session_vreply(struct session *s, int code, const char *status, const char *fmt,
			   va_list ap)
{
	char text[PROTO_REPLY_LINE_MAX];
	vsnprintf(text, sizeof(text) - 16, fmt, ap);
	struct evbuffer *out = bufferevent_get_output(s->bev);
	if (status != NULL)
		evbuffer_add_printf(out, "%d %s %s\r\n", code, status, text);
	else
		evbuffer_add_printf(out, "%d %s\r\n", code, text);
}

void session_reply(struct session *s, int code, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	session_vreply(s, code, status, fmt, ap);
	va_end(ap);
}

void session_reply_error(struct session *s, int code, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	session_vreply(s, code, status, fmt, ap);
	va_end(ap);
	s->counts.errors_total++;
	if (++s->errors < (unsigned)s->ctx->conf->smtp_error_limit || s->state == SESSION_CLOSING)
		return;
	log_info("too many errors from [%s], disconnecting", s->addr);
	session_reply(s, 421, "4.7.0", "%s Error: too many errors", s->ctx->hostname);
	session_close(s);
}

void session_reply_parse_error(struct session *s, const struct smtp_error *err)
{
	session_reply_error(s, err->code, err->status, "%s", err->text);
}

bool session_client_trusted(const struct session *s)
{
	return s->local_client ||
	       cidr_match_any(s->ctx->mynetworks, s->ctx->nmynetworks, (const struct sockaddr *)&s->sa);
}

/* Waiting for another thread (the committer, a store worker), whose callback finishes. */
static bool session_waiting(const struct session *s)
{
	return s->state == SESSION_COMMIT || s->state == SESSION_LOOKUP;
}

void session_touch(struct session *s)
{
	struct timeval tv = { .tv_sec = s->ctx->conf->smtp_timeout };
	evtimer_add(s->timer, &tv);
}

void session_close(struct session *s)
{
	if (s->state == SESSION_CLOSING)
		return;
	if (session_waiting(s))
		s->free_after_commit = true;
	s->state = SESSION_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	evtimer_del(s->timer);
	/* The write callback frees the session once the last reply is out. */
	bufferevent_trigger(s->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Returns true when a command was handled and more input may be waiting. */
static bool session_read_command(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t eol = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
	if (p.pos < 0) {
		size_t n = evbuffer_get_length(in);
		if (n > PROTO_COMMAND_LINE_MAX + 1 || (s->skip_line && n > 1)) {
			if (!s->skip_line)
				session_reply_error(s, 500, "5.5.2", "Error: line too long");
			s->skip_line = true;
			evbuffer_drain(in, n - 1); /* the last byte may be the CR of a CRLF */
		}
		return false;
	}
	if (s->skip_line || p.pos > PROTO_COMMAND_LINE_MAX) {
		evbuffer_drain(in, (size_t)p.pos + eol);
		if (!s->skip_line)
			session_reply_error(s, 500, "5.5.2", "Error: line too long");
		s->skip_line = false;
		return true;
	}
	char line[PROTO_COMMAND_LINE_MAX + 1];
	evbuffer_remove(in, line, (size_t)p.pos);
	line[p.pos] = '\0';
	evbuffer_drain(in, eol);
	session_touch(s);
	session_command(s, line, (size_t)p.pos);
	return true;
}

static bool session_output_full(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) <= SESSION_OUTPUT_MAX)
		return false;
	bufferevent_disable(s->bev, EV_READ);
	return true;
}

static void session_process(struct session *s)
{
	for (;;) {
		if (session_output_full(s))
			return;
		bool more = false;
		if (s->state == SESSION_COMMAND)
			more = session_read_command(s);
		else if (s->state == SESSION_DATA)
			more = session_data_read(s);
		if (!more)
			return;
	}
}

void session_resume(struct session *s)
{
	if (s->state != SESSION_COMMAND)
		return;
	if (s->draining && !s->in_tx) {
		session_reply(s, 421, "4.3.2", "%s Service shutting down", s->ctx->hostname);
		session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	session_touch(s);
	session_process(s);
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

/* Bytes not yet on the wire: with TLS, the filter's output may be empty while the socket
   layer underneath still holds the last (encrypted) reply. */
static size_t session_unsent(struct session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void session_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (session_unsent(s) == 0 || ++s->linger_ticks > 500) {
		smtp_server_unlink(s->srv, s);
		return;
	}
	struct timeval tv = { 0, 10000 };
	evtimer_add(s->timer, &tv);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
	if (s->state == SESSION_CLOSING) {
		if (pending == 0 && !s->free_after_commit) {
			evtimer_assign(s->timer, s->ctx->base, session_linger_cb, s);
			session_linger_cb(-1, 0, s);
		}
		return;
	}
	/* Reading was paused by session_output_full: the client has caught up. */
	if (pending == 0 && !session_waiting(s) && !(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		session_process(s);
	}
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
		log_info("TLS established from [%s]: %s", s->addr, s->tls_info);
		return;
	}
	if (s->tls && (what & BEV_EVENT_ERROR) && s->tls_info[0] == '\0')
		log_info("TLS handshake failed from [%s]", s->addr);
	else if (what & BEV_EVENT_ERROR)
		log_info("lost connection from [%s]", s->addr);
	if (s->free_after_commit)
		return; /* already waiting to be freed by the commit's or the lookup's callback */
	if (session_waiting(s)) {
		s->free_after_commit = true;
		s->state = SESSION_CLOSING;
		return;
	}
	smtp_server_unlink(s->srv, s);
}

static void session_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (session_waiting(s) || s->state == SESSION_CLOSING)
		return;
	log_info("timeout after %s from [%s]", s->state == SESSION_DATA ? "DATA" : "command",
		 s->addr);
	session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->ctx->hostname);
	session_close(s);
}

void session_setup_io(struct session *s, int fd)
{
	s->bev = bufferevent_socket_new(s->ctx->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	s->timer = evtimer_new(s->ctx->base, session_timeout_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->wf = wflush_new(s->bev);
	session_touch(s);
}

/* Plaintext that was pipelined behind STARTTLS is thrown away before the handshake, so that
   it can never be taken as if it had come over TLS (the CVE-2011-0411 class). */
void session_start_tls(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	SSL *ssl = SSL_new(s->ctx->tls);
	struct bufferevent *tb = bufferevent_openssl_filter_new(
		s->ctx->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
		BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		log_error("cannot start TLS for [%s]", s->addr);
		session_close(s);
		return;
	}
	s->bev = tb;
	s->tls = true;
	bufferevent_setcb(tb, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}
