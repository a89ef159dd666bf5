/* The DATA phase: content lines into cleanup and the queue file, then the group commit, and
   only then the 250 (one per recipient for LMTP). */
#include "smtp/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "queue/cleanup.h"
#include "route/router.h"
#include "queue/commit.h"
#include "queue/qmgr.h"
#include "queue/spool.h"
#include "util/log.h"

/* The reply at the end of DATA: once for SMTP, once per accepted RCPT for LMTP (RFC 2033
   4.2), whatever the aliases made of them. */
static void session_data_reply(struct session *s, int code, const char *status, const char *text)
{
	if (!s->lmtp) {
		session_reply(s, code, status, "%s", text);
		return;
	}
	for (size_t i = 0; i < s->naccepted; i++)
		session_reply(s, code, status, "<%s> %s", s->accepted[i], text);
}

static void session_storage_error(struct session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		session_data_reply(s, 452, "4.3.1", "Error: insufficient system storage");
	else
		session_data_reply(s, 451, "4.3.0", "Error: local error writing the queue file");
}

void session_data_start(struct session *s)
{
	if (qfile_create(s->ctx->spool, &s->env, &s->qf) < 0) {
		int err = errno;
		log_error("%s: cannot create queue file: %s", s->id, strerror(err));
		session_storage_error(s, err);
		session_reset_tx(s);
		return;
	}
	struct cleanup_params p = {
		.id = s->id,
		.hostname = s->ctx->hostname,
		.client_addr = s->addr,
		.helo = s->helo,
		.proto = s->env.proto,
		.tls = s->tls_info[0] ? s->tls_info : NULL,
		.sender = s->env.sender,
		.for_rcpt = s->env.nrcpts == 1 ? s->env.rcpts[0].address : NULL,
		.header_size_limit = s->ctx->conf->header_size_limit,
		.raw = s->ctx->raw,
		.router = s->ctx->raw ? NULL : s->ctx->router,
	};
	s->cleanup = cleanup_new(&p, s->qf);
	s->state = SESSION_DATA;
	s->data_size = 0;
	s->content_error = CONTENT_OK;
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void session_content_fail(struct session *s, enum session_content_error e)
{
	if (s->content_error == CONTENT_OK)
		s->content_error = e;
}

static void session_content_line(struct session *s, const char *line, size_t len)
{
	s->data_size += len + 2;
	if (s->data_size > (uint64_t)s->ctx->conf->message_size_limit)
		session_content_fail(s, CONTENT_TOO_BIG);
	else if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
		session_content_fail(s, CONTENT_BARE_NEWLINE);
	else if (memchr(line, '\0', len) != NULL)
		session_content_fail(s, CONTENT_NUL);
	if (s->content_error != CONTENT_OK)
		return;
	enum cleanup_status st = cleanup_line(s->cleanup, line, len);
	if (st == CLEANUP_HEADER_TOO_BIG)
		session_content_fail(s, CONTENT_HEADER_TOO_BIG);
	else if (st == CLEANUP_WRITE_ERROR)
		session_content_fail(s, CONTENT_WRITE_ERROR);
}

static void session_committed(void *arg, int result)
{
	struct session *s = arg;
	if (s->free_after_commit) {
		if (result == 0)
			log_warn("%s: queued, but the client left before the reply; it may send it again",
				 s->id);
		if (result == 0 && s->ctx->qmgr != NULL && !s->held)
			qmgr_enqueue(s->ctx->qmgr, s->id); /* queued all the same: deliver it */
		smtp_server_unlink(s->srv, s);
		return;
	}
	if (result == 0) {
		char text[64];
		log_info("%s: client=[%s], helo=%s, from=<%s>, size=%" PRIu64 ", nrcpt=%zu, proto=%s, status=%s",
			 s->id, s->addr, s->helo, s->env.sender, s->data_size, s->env.nrcpts, s->env.proto,
			 s->held ? "held" : "queued");
		snprintf(text, sizeof(text), "Ok: queued as %s", s->id);
		if (s->ctx->qmgr != NULL && !s->held)
			qmgr_enqueue(s->ctx->qmgr, s->id);
		session_data_reply(s, 250, s->lmtp ? "2.1.5" : "2.0.0", text);
	} else {
		log_error("%s: cannot commit queue file: %s", s->id, strerror(result));
		session_storage_error(s, result);
	}
	session_reset_tx(s);
	s->state = SESSION_COMMAND;
	session_resume(s);
}

static void session_content_refused(struct session *s)
{
	static const struct { int code; const char *status, *text; } replies[] = {
		[CONTENT_TOO_BIG] = { 552, "5.3.4", "Error: message size exceeds fixed maximum message size" },
		[CONTENT_LINE_TOO_LONG] = { 554, "5.6.0", "Error: message has a line longer than allowed" },
		[CONTENT_BARE_NEWLINE] = { 554, "5.6.0", "Error: bare CR or LF in message content" },
		[CONTENT_NUL] = { 554, "5.6.0", "Error: NUL byte in message content" },
		[CONTENT_HEADER_TOO_BIG] = { 552, "5.3.4", "Error: message header size exceeds limit" },
	};
	const char *st = replies[s->content_error].status;
	log_info("%s: reject: DATA from [%s]: %d %s %s; from=<%s>", s->id, s->addr,
		 replies[s->content_error].code, st, replies[s->content_error].text, s->env.sender);
	session_data_reply(s, replies[s->content_error].code, st, replies[s->content_error].text);
}

static void session_data_end(struct session *s)
{
	if (s->content_error == CONTENT_OK) {
		enum cleanup_status st = cleanup_finish(s->cleanup);
		if (st != CLEANUP_OK)
			session_content_fail(s, st == CLEANUP_HEADER_TOO_BIG ? CONTENT_HEADER_TOO_BIG
									      : CONTENT_WRITE_ERROR);
	}
	if (s->content_error == CONTENT_WRITE_ERROR) {
		int err = qfile_error(s->qf);
		log_error("%s: queue file write error: %s", s->id, strerror(err));
		session_storage_error(s, err);
	} else if (s->content_error != CONTENT_OK) {
		session_content_refused(s);
	}
	if (s->content_error != CONTENT_OK) {
		session_reset_tx(s);
		s->state = SESSION_COMMAND;
		return;
	}
	cleanup_free(&s->cleanup);
	s->state = SESSION_COMMIT;
	bufferevent_disable(s->bev, EV_READ);
	evtimer_del(s->timer);
	struct qfile *qf = s->qf;
	s->qf = NULL;
	const struct policy_rule *hold = strcmp(s->ctx->queue, SPOOL_INCOMING) == 0
						 ? router_hold(s->ctx->router, &s->env) : NULL;
	s->held = hold != NULL;
	if (hold != NULL)
		log_info("%s: hold by %s:%u%s%s", s->id, hold->file, hold->line,
			 hold->nexthop.text ? ": " : "", hold->nexthop.text ? hold->nexthop.text : "");
	committer_submit(s->ctx->committer, qf, hold != NULL ? "hold" : s->ctx->queue, session_committed, s);
}

/* A line longer than the limit is swallowed up to its CRLF and the message refused at the end,
   so the session stays in step with the client. */
static bool session_data_long_line(struct session *s, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);
	size_t limit = (size_t)s->ctx->conf->line_length_limit;
	if (n < limit && !s->skip_line)
		return false;
	if (n < 2)
		return false;
	session_content_fail(s, CONTENT_LINE_TOO_LONG);
	s->skip_line = true;
	evbuffer_drain(in, n - 1); /* the last byte may be the CR of a CRLF */
	return false;
}

bool session_data_read(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t eol = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
	if (p.pos < 0)
		return session_data_long_line(s, in);
	size_t len = (size_t)p.pos;
	if (s->skip_line || len + 2 > (size_t)s->ctx->conf->line_length_limit) {
		if (!s->skip_line)
			session_content_fail(s, CONTENT_LINE_TOO_LONG);
		s->skip_line = false;
		evbuffer_drain(in, len + eol);
		return true;
	}
	const char *line = (const char *)evbuffer_pullup(in, (ssize_t)(len + eol));
	session_touch(s);
	if (len == 1 && line[0] == '.') {
		evbuffer_drain(in, len + eol);
		session_data_end(s);
		return s->state == SESSION_COMMAND;
	}
	if (len > 0 && line[0] == '.')
		session_content_line(s, line + 1, len - 1);
	else
		session_content_line(s, line, len);
	evbuffer_drain(in, len + eol);
	return true;
}
