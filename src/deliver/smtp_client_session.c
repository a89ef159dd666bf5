/* The client side of the SMTP and LMTP dialogue (RFC 5321, 2033): greeting, EHLO/LHLO (HELO as
   a fallback), STARTTLS (RFC 3207), then MAIL, RCPT and DATA, pipelined when the peer offers
   PIPELINING (RFC 2920), and RSET to keep the connection for the next message. One handler per
   state; each runs when a whole reply has arrived. */
#include "deliver/smtp_client_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "net/tls.h"
#include "smtp/command.h"
#include "util/buf.h"
#include "util/log.h"

const char *smtp_client_session_doing(const struct smtp_client_conn *conn)
{
	switch (conn->state) {
	case SMTP_CLIENT_CONNECTING:
		return "connecting";
	case SMTP_CLIENT_GREETING:
		return "receiving the initial server greeting";
	case SMTP_CLIENT_EHLO:
		return conn->hop.lmtp ? "performing the LHLO handshake" : "performing the EHLO handshake";
	case SMTP_CLIENT_HELO:
		return "performing the HELO handshake";
	case SMTP_CLIENT_STARTTLS:
		return "sending STARTTLS";
	case SMTP_CLIENT_HANDSHAKE:
		return "performing the TLS handshake";
	case SMTP_CLIENT_MAIL:
		return "sending MAIL FROM";
	case SMTP_CLIENT_RCPT:
		return "sending RCPT TO";
	case SMTP_CLIENT_DATA:
		return "sending DATA command";
	case SMTP_CLIENT_CONTENT:
		return "sending message body";
	case SMTP_CLIENT_DOT:
		return "sending end of data -- message may be sent more than once";
	case SMTP_CLIENT_RSET:
		return "sending RSET";
	case SMTP_CLIENT_IDLE:
		return "waiting for the next message";
	case SMTP_CLIENT_QUIT:
		return "sending QUIT";
	case SMTP_CLIENT_DEAD:
		break;
	}
	return "closing";
}

/* Ends the connection's part in its job. polite: the peer still speaks SMTP and gets a QUIT.
   A cached connection that turns out dead before its first reply is replaced by a fresh one
   without the job noticing; before a transaction the next address is tried; during one the
   recipients not yet final are deferred. */
static void session_abandon(struct smtp_client_conn *conn, const struct smtp_client_error *e, bool polite)
{
	struct smtp_client_job *job = conn->job;
	enum smtp_client_state st = conn->state;
	bool stale = conn->reused && (st == SMTP_CLIENT_RSET || (st == SMTP_CLIENT_MAIL && !conn->got_reply));
	bool plaintext_retry = st == SMTP_CLIENT_HANDSHAKE && conn->hop.tls == SMTP_TLS_MAY;
	if (job != NULL && !stale)
		log_info("%s: %s", job->req->id, e->text);
	if (polite && job != NULL) {
		job->conn = NULL;
		conn->job = NULL;
	}
	if (polite)
		smtp_client_conn_quit(conn);
	else
		smtp_client_conn_dispose(conn);
	if (job == NULL)
		return;
	if (stale)
		smtp_client_hop_start(job);
	else if (st < SMTP_CLIENT_MAIL)
		smtp_client_hop_failed(job, e, plaintext_retry);
	else {
		smtp_client_job_set_open(job, false, DELIVERY_DEFER, e);
		smtp_client_job_finish(job);
	}
}

void smtp_client_session_fail(struct smtp_client_conn *conn, const struct smtp_client_error *e)
{
	session_abandon(conn, e, false);
}

/* A reply that ends an attempt before any transaction. The result will be a DEFER whatever
   the code (only MAIL, RCPT and DATA replies bounce), so a 5xx code is not kept. */
static void session_refused(struct smtp_client_conn *conn, const char *cmd)
{
	struct smtp_client_error e;
	if (cmd == NULL)
		smtp_client_conn_error(conn, "4.4.1", &e, "host %s refused to talk to me: %s", conn->relay,
				       conn->reply.text);
	else
		smtp_client_conn_error(conn, "4.4.1", &e, "host %s said: %s (in reply to %s command)",
				       conn->relay, conn->reply.text, cmd);
	e.code = conn->reply.code / 100 == 4 ? conn->reply.code : 0;
	session_abandon(conn, &e, true);
}

/* RFC 5321 3.8: 421 means the server is closing the channel, whatever it answers. */
static bool session_closing(struct smtp_client_conn *conn, const char *cmd)
{
	if (conn->reply.code != 421)
		return false;
	struct smtp_client_error e;
	smtp_client_conn_reply_error(conn, cmd, &e);
	session_abandon(conn, &e, true);
	return true;
}

static void session_hello(struct smtp_client_conn *conn)
{
	smtp_client_conn_send(conn, "%s %s", conn->hop.lmtp ? "LHLO" : "EHLO", conn->client->helo_name);
	conn->state = SMTP_CLIENT_EHLO;
	smtp_client_conn_arm(conn, conn->client->opts.helo_timeout);
}

static void session_idle(struct smtp_client_conn *conn)
{
	if (conn->client->opts.connection_reuse_time <= 0) {
		smtp_client_conn_quit(conn);
		return;
	}
	conn->state = SMTP_CLIENT_IDLE;
	smtp_client_conn_arm(conn, conn->client->opts.connection_reuse_time);
}

/* A healthy connection either starts the job waiting on it or goes back to the cache. */
static void session_next(struct smtp_client_conn *conn)
{
	if (conn->job != NULL)
		smtp_client_session_tx_start(conn);
	else
		session_idle(conn);
}

static bool session_want_tls(const struct smtp_client_conn *conn)
{
	return !conn->tls && !conn->no_starttls && conn->hop.tls != SMTP_TLS_NONE &&
	       conn->client->opts.tls != NULL && conn->ext.starttls;
}

/* After EHLO (or HELO): STARTTLS when wanted, else the transaction. */
static void session_ready(struct smtp_client_conn *conn)
{
	if (session_want_tls(conn)) {
		smtp_client_conn_send(conn, "STARTTLS");
		conn->state = SMTP_CLIENT_STARTTLS;
		smtp_client_conn_arm(conn, conn->client->opts.helo_timeout);
		return;
	}
	if (!conn->tls && conn->hop.tls == SMTP_TLS_ENCRYPT) {
		struct smtp_client_error e;
		smtp_client_conn_error(conn, "4.7.4", &e, "TLS is required, but was not offered by host %s",
				       conn->relay);
		session_abandon(conn, &e, true);
		return;
	}
	session_next(conn);
}

static void session_greeting(struct smtp_client_conn *conn)
{
	if (conn->reply.code / 100 == 2)
		session_hello(conn);
	else
		session_refused(conn, NULL);
}

static void session_ehlo(struct smtp_client_conn *conn)
{
	int cls = conn->reply.code / 100;
	if (cls == 2) {
		conn->ext = conn->reply.ext;
		session_ready(conn);
	} else if (cls == 5 && !conn->hop.lmtp && !conn->tls) {
		/* A server that does not know EHLO may still take mail the RFC 821 way. */
		smtp_client_conn_send(conn, "HELO %s", conn->client->helo_name);
		conn->state = SMTP_CLIENT_HELO;
		smtp_client_conn_arm(conn, conn->client->opts.helo_timeout);
	} else {
		session_refused(conn, conn->hop.lmtp ? "LHLO" : "EHLO");
	}
}

static void session_helo(struct smtp_client_conn *conn)
{
	if (conn->reply.code / 100 != 2) {
		session_refused(conn, "HELO");
		return;
	}
	memset(&conn->ext, 0, sizeof(conn->ext));
	session_ready(conn);
}

/* A refused STARTTLS is fatal only when TLS is required; "may" goes on in plaintext. */
static void session_starttls(struct smtp_client_conn *conn)
{
	struct smtp_client_error e;
	if (conn->reply.code == 220) {
		if (smtp_client_conn_start_tls(conn) == 0)
			return;
		smtp_client_conn_error(conn, "4.7.5", &e, "Cannot start TLS with %s: internal error", conn->relay);
		session_abandon(conn, &e, false);
	} else if (conn->hop.tls == SMTP_TLS_ENCRYPT) {
		smtp_client_conn_error(conn, "4.7.4", &e, "TLS is required, but host %s refused to start TLS: %s",
				       conn->relay, conn->reply.text);
		session_abandon(conn, &e, true);
	} else {
		conn->no_starttls = true;
		session_ready(conn);
	}
}

void smtp_client_session_connected(struct smtp_client_conn *conn)
{
	if (conn->state == SMTP_CLIENT_CONNECTING) {
		conn->state = SMTP_CLIENT_GREETING;
		smtp_client_conn_arm(conn, conn->client->opts.helo_timeout);
	} else if (conn->state == SMTP_CLIENT_HANDSHAKE) {
		char info[160];
		tls_describe(bufferevent_openssl_get_ssl(conn->bev), info, sizeof(info));
		log_info("%s: TLS established with %s: %s", conn->job != NULL ? conn->job->req->id : "-",
			 conn->relay, info);
		conn->tls = true;
		/* RFC 3207 4.2: what was learnt before TLS is forgotten. */
		memset(&conn->ext, 0, sizeof(conn->ext));
		session_hello(conn);
	}
}

/* SMTPUTF8 and 8-bit content are never downgraded: a peer without them gets nothing. */
static bool session_refuse_message(struct smtp_client_conn *conn)
{
	const struct delivery_request *req = conn->job->req;
	struct smtp_client_error e;
	if (req->smtputf8 && !conn->ext.smtputf8)
		smtp_client_conn_error(conn, "5.6.7", &e, "SMTPUTF8 is required, but was not offered by host %s",
				       conn->relay);
	else if (req->eightbit && !conn->ext.eightbitmime)
		smtp_client_conn_error(conn, "5.6.3", &e, "8-bit content refused by the next hop: host %s does not offer 8BITMIME",
				       conn->relay);
	else if (conn->ext.size_max > 0 && req->content_size > conn->ext.size_max)
		smtp_client_conn_error(conn, "5.3.4", &e, "message size %" PRIu64 " exceeds size limit %" PRIu64 " of server %s",
				       req->content_size, conn->ext.size_max, conn->relay);
	else
		return false;
	log_info("%s: %s", req->id, e.text);
	smtp_client_job_set_open(conn->job, false, DELIVERY_BOUNCE, &e);
	smtp_client_job_finish(conn->job);
	session_idle(conn);
	return true;
}

static void session_mail_command(const struct smtp_client_conn *conn, struct buf *b)
{
	const struct delivery_request *req = conn->job->req;
	buf_printf(b, "MAIL FROM:<%s>", req->sender);
	if (conn->ext.size)
		buf_printf(b, " SIZE=%" PRIu64, req->content_size);
	if (req->eightbit)
		buf_puts(b, " BODY=8BITMIME");
	if (req->smtputf8)
		buf_puts(b, " SMTPUTF8");
	if (conn->ext.dsn && req->ret != NULL && req->ret[0] != '\0')
		buf_printf(b, " RET=%s", req->ret);
	if (conn->ext.dsn && req->envid != NULL && req->envid[0] != '\0')
		buf_printf(b, " ENVID=%s", req->envid);
	buf_puts(b, "\r\n");
}

static void session_notify(struct buf *b, unsigned notify)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ SMTP_NOTIFY_SUCCESS, "SUCCESS" },
		{ SMTP_NOTIFY_FAILURE, "FAILURE" },
		{ SMTP_NOTIFY_DELAY, "DELAY" },
	};
	if (notify & SMTP_NOTIFY_NEVER) {
		buf_puts(b, " NOTIFY=NEVER");
		return;
	}
	const char *sep = " NOTIFY=";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (notify & names[i].bit) {
			buf_printf(b, "%s%s", sep, names[i].name);
			sep = ",";
		}
	}
}

static void session_rcpt_command(const struct smtp_client_conn *conn, size_t i, struct buf *b)
{
	const struct delivery_rcpt *rcpt = &conn->job->req->rcpts[i];
	buf_printf(b, "RCPT TO:<%s>", rcpt->address);
	if (conn->ext.dsn) {
		session_notify(b, rcpt->notify);
		if (rcpt->orcpt != NULL && rcpt->orcpt[0] != '\0')
			buf_printf(b, " ORCPT=%s", rcpt->orcpt);
	}
	buf_puts(b, "\r\n");
}

/* One write for the whole group keeps it in one TCP segment (and one TLS record) where it
   fits, which is the point of PIPELINING. */
static void session_write(struct smtp_client_conn *conn, struct buf *b)
{
	bufferevent_write(conn->bev, b->data, b->len);
	buf_free(b);
	smtp_client_conn_arm(conn, conn->client->opts.command_timeout);
}

void smtp_client_session_tx_start(struct smtp_client_conn *conn)
{
	struct smtp_client_job *job = conn->job;
	if (session_refuse_message(conn))
		return;
	conn->mail_ok = false;
	conn->dot_queued = false;
	conn->broken = false;
	conn->cursor = 0;
	conn->naccepted = 0;
	for (size_t i = 0; i < job->req->nrcpts; i++)
		job->rstate[i] = SMTP_CLIENT_RCPT_PENDING;
	struct buf b = { 0 };
	session_mail_command(conn, &b);
	if (conn->ext.pipelining) {
		for (size_t i = 0; i < job->req->nrcpts; i++)
			session_rcpt_command(conn, i, &b);
		buf_puts(&b, "DATA\r\n");
	}
	conn->state = SMTP_CLIENT_MAIL;
	session_write(conn, &b);
}

void smtp_client_session_tx_end(struct smtp_client_conn *conn)
{
	if (conn->job != NULL)
		smtp_client_job_finish(conn->job);
	if (conn->broken) {
		smtp_client_conn_dispose(conn);
	} else if (conn->reply.code == 421 || conn->client->opts.connection_reuse_time <= 0) {
		smtp_client_conn_quit(conn);
	} else {
		smtp_client_conn_send(conn, "RSET");
		conn->state = SMTP_CLIENT_RSET;
		smtp_client_conn_arm(conn, conn->client->opts.command_timeout);
	}
}

static void session_mail(struct smtp_client_conn *conn)
{
	struct smtp_client_error e;
	if (session_closing(conn, "MAIL FROM"))
		return;
	conn->got_reply = true;
	conn->mail_ok = conn->reply.code / 100 == 2;
	if (!conn->mail_ok) {
		smtp_client_conn_reply_error(conn, "MAIL FROM", &e);
		smtp_client_job_set_open(conn->job, false, smtp_client_reply_status(conn->reply.code), &e);
	}
	conn->state = SMTP_CLIENT_RCPT;
	smtp_client_conn_arm(conn, conn->client->opts.command_timeout);
	/* With PIPELINING the RCPT replies are on their way, whatever MAIL got. */
	if (conn->ext.pipelining)
		return;
	if (!conn->mail_ok) {
		smtp_client_session_tx_end(conn);
		return;
	}
	struct buf b = { 0 };
	session_rcpt_command(conn, 0, &b);
	session_write(conn, &b);
}

static void session_rcpt_result(struct smtp_client_conn *conn, size_t i)
{
	struct smtp_client_job *job = conn->job;
	struct smtp_client_error e;
	if (conn->reply.code / 100 == 2) {
		job->rstate[i] = SMTP_CLIENT_RCPT_ACCEPTED;
		conn->naccepted++;
		return;
	}
	smtp_client_conn_reply_error(conn, "RCPT TO", &e);
	smtp_client_job_set(job, i, smtp_client_reply_status(conn->reply.code), &e);
}

static void session_rcpt(struct smtp_client_conn *conn)
{
	if (session_closing(conn, "RCPT TO"))
		return;
	size_t i = conn->cursor++;
	if (conn->mail_ok)
		session_rcpt_result(conn, i);
	bool more = conn->cursor < conn->job->req->nrcpts;
	if (!more)
		conn->state = SMTP_CLIENT_DATA;
	if (conn->ext.pipelining) {
		smtp_client_conn_arm(conn, conn->client->opts.command_timeout);
		return;
	}
	if (!more && conn->naccepted == 0) {
		smtp_client_session_tx_end(conn);
		return;
	}
	struct buf b = { 0 };
	if (more)
		session_rcpt_command(conn, conn->cursor, &b);
	else
		buf_puts(&b, "DATA\r\n");
	session_write(conn, &b);
}

static void session_data(struct smtp_client_conn *conn)
{
	struct smtp_client_error e;
	if (session_closing(conn, "DATA"))
		return;
	if (conn->reply.code == 354 && conn->naccepted > 0) {
		smtp_client_data_start(conn);
		return;
	}
	/* 354 with no recipient accepted (pipelined): the peer waits for content that will not
	   come, and anything sent now would be taken as such; closing is the clean way out. */
	if (conn->reply.code == 354)
		conn->broken = true;
	else if (conn->mail_ok) {
		smtp_client_conn_reply_error(conn, "DATA", &e);
		smtp_client_job_set_open(conn->job, true, smtp_client_reply_status(conn->reply.code), &e);
	}
	smtp_client_session_tx_end(conn);
}

static size_t session_next_accepted(const struct smtp_client_conn *conn)
{
	const struct smtp_client_job *job = conn->job;
	size_t i = conn->cursor;
	while (i < job->req->nrcpts && job->rstate[i] != SMTP_CLIENT_RCPT_ACCEPTED)
		i++;
	return i;
}

/* SMTP: one reply for all accepted recipients. LMTP: one per accepted recipient, in RCPT
   order (RFC 2033 4.2). */
static void session_dot(struct smtp_client_conn *conn)
{
	struct smtp_client_job *job = conn->job;
	struct smtp_client_error e;
	enum delivery_status st = smtp_client_reply_status(conn->reply.code);
	smtp_client_conn_reply_error(conn, "end of DATA", &e);
	if (!conn->hop.lmtp) {
		smtp_client_job_set_open(job, true, st, &e);
		smtp_client_session_tx_end(conn);
		return;
	}
	size_t i = session_next_accepted(conn);
	if (i < job->req->nrcpts)
		smtp_client_job_set(job, i, st, &e);
	conn->cursor = i + 1;
	if (session_next_accepted(conn) >= job->req->nrcpts)
		smtp_client_session_tx_end(conn);
	else
		smtp_client_conn_arm(conn, conn->client->opts.data_done_timeout);
}

/* A reply before the final dot: the peer gave up on the message (say 552, too big). Even a
   2xx cannot mean the whole message arrived, so it defers. */
static void session_content(struct smtp_client_conn *conn)
{
	struct smtp_client_error e;
	if (conn->dot_queued) {
		conn->state = SMTP_CLIENT_DOT;
		conn->cursor = 0;
		session_dot(conn);
		return;
	}
	enum delivery_status st = smtp_client_reply_status(conn->reply.code);
	smtp_client_conn_reply_error(conn, "DATA", &e);
	smtp_client_job_set_open(conn->job, true, st == DELIVERY_DONE ? DELIVERY_DEFER : st, &e);
	conn->broken = true;
	smtp_client_session_tx_end(conn);
}

static void session_rset(struct smtp_client_conn *conn)
{
	if (conn->reply.code / 100 != 2) {
		struct smtp_client_error e;
		smtp_client_conn_reply_error(conn, "RSET", &e);
		session_abandon(conn, &e, true);
		return;
	}
	session_next(conn);
}

void smtp_client_session_reply(struct smtp_client_conn *conn)
{
	/* The greeting can be read before the connect completion is reported. */
	if (conn->state == SMTP_CLIENT_CONNECTING)
		conn->state = SMTP_CLIENT_GREETING;
	switch (conn->state) {
	case SMTP_CLIENT_GREETING:
		session_greeting(conn);
		break;
	case SMTP_CLIENT_EHLO:
		session_ehlo(conn);
		break;
	case SMTP_CLIENT_HELO:
		session_helo(conn);
		break;
	case SMTP_CLIENT_STARTTLS:
		session_starttls(conn);
		break;
	case SMTP_CLIENT_MAIL:
		session_mail(conn);
		break;
	case SMTP_CLIENT_RCPT:
		session_rcpt(conn);
		break;
	case SMTP_CLIENT_DATA:
		session_data(conn);
		break;
	case SMTP_CLIENT_CONTENT:
		session_content(conn);
		break;
	case SMTP_CLIENT_DOT:
		session_dot(conn);
		break;
	case SMTP_CLIENT_RSET:
		session_rset(conn);
		break;
	case SMTP_CLIENT_IDLE: /* typically 421 on the peer's idle timeout */
	case SMTP_CLIENT_QUIT:
		smtp_client_conn_dispose(conn);
		break;
	case SMTP_CLIENT_CONNECTING:
	case SMTP_CLIENT_HANDSHAKE:
	case SMTP_CLIENT_DEAD:
		break;
	}
}
