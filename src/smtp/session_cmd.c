/* Session commands: one handler per verb (RFC 5321, RFC 2033 for LMTP). */
#include "smtp/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conf/config.h"
#include "queue/cleanup.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "route/router.h"
#include "util/log.h"
#include "util/timeutil.h"

void session_greet(struct session *s)
{
	session_reply(s, 220, NULL, "%s %s postern", s->ctx->hostname, s->lmtp ? "LMTP" : "ESMTP");
}

void session_reset_tx(struct session *s)
{
	qfile_abort(&s->qf);
	cleanup_free(&s->cleanup);
	queue_envelope_clear(&s->env);
	session_rcpt_clear(s);
	s->in_tx = false;
	s->tx_smtputf8 = false;
	s->rcpt_rejected = 0;
	s->id[0] = '\0';
	s->data_size = 0;
	s->content_error = CONTENT_OK;
}

static void session_ehlo_lines(struct session *s)
{
	const struct config *conf = s->ctx->conf;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	evbuffer_add_printf(out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %" PRId64 "\r\n", s->ctx->hostname,
			    conf->message_size_limit);
	if (s->ctx->tls != NULL && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	evbuffer_add_printf(out, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 DSN\r\n");
	s->offer = (struct smtp_offer){ .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true };
}

/* HELO, EHLO and LHLO. The argument is only logged and recorded: rejecting odd HELO names
   gains nothing against spammers and loses mail from misconfigured robots. */
static void session_hello(struct session *s, enum smtp_verb verb, const char *arg)
{
	const char *name = verb == SMTP_VERB_HELO ? "HELO" : verb == SMTP_VERB_EHLO ? "EHLO" : "LHLO";
	if (s->lmtp != (verb == SMTP_VERB_LHLO)) {
		session_reply_error(s, 500, "5.5.1", "Error: %s is not used with %s", name,
				    s->lmtp ? "LMTP" : "SMTP");
		return;
	}
	if (arg[0] == '\0' || strlen(arg) > PROTO_HELO_MAX || strchr(arg, ' ') != NULL) {
		session_reply_error(s, 501, "5.5.4", "Syntax: %s hostname", name);
		return;
	}
	session_reset_tx(s);
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->greeted = true;
	s->esmtp = verb != SMTP_VERB_HELO;
	if (verb == SMTP_VERB_HELO) {
		s->offer = (struct smtp_offer){ 0 };
		session_reply(s, 250, NULL, "%s", s->ctx->hostname);
	} else {
		session_ehlo_lines(s);
	}
}

static bool session_low_on_disk(struct session *s, uint64_t need)
{
	int64_t reserve = s->ctx->conf->disk_reserve;
	if (reserve <= 0)
		return false;
	int64_t avail = spool_free_bytes(s->ctx->spool);
	return avail >= 0 && (uint64_t)avail < (uint64_t)reserve + need;
}

static const char *session_proto(const struct session *s)
{
	if (s->lmtp)
		return s->tls ? "LMTPS" : "LMTP";
	if (!s->esmtp)
		return "SMTP";
	return s->tls ? "ESMTPS" : "ESMTP";
}

static void session_begin_tx(struct session *s, const struct smtp_mail_args *args)
{
	static const char *const rets[] = { NULL, "FULL", "HDRS" };
	static const char *const bodies[] = { NULL, "7BIT", "8BITMIME" };
	struct queue_envelope *env = &s->env;
	queue_id_new(s->id);
	memcpy(env->id, s->id, sizeof(env->id));
	env->arrival_us = time_now_us();
	queue_envelope_set(&env->origin, s->lmtp ? "lmtp" : "smtp");
	queue_envelope_set(&env->client_addr, s->addr);
	queue_envelope_set(&env->helo, s->helo);
	queue_envelope_set(&env->proto, session_proto(s));
	char sender[REWRITE_ADDRESS_MAX + 1];
	router_rewrite(s->ctx->router, REWRITE_FROM, args->from.mailbox, sender, sizeof(sender));
	queue_envelope_set(&env->sender, sender);
	queue_envelope_set(&env->ret, rets[args->ret]);
	queue_envelope_set(&env->body, bodies[args->body]);
	if (args->envid[0] != '\0') {
		char xt[PROTO_ENVID_MAX * 3 + 1];
		if (xtext_encode(args->envid, xt, sizeof(xt)) >= 0)
			queue_envelope_set(&env->envid, xt);
	}
	env->smtputf8 = args->smtputf8;
	s->tx_smtputf8 = args->smtputf8;
	s->in_tx = true;
}

static void session_mail(struct session *s, const char *arg)
{
	struct smtp_mail_args args;
	struct smtp_error err;
	if (!s->greeted) {
		session_reply_error(s, 503, "5.5.1", "Error: send %s first", s->lmtp ? "LHLO" : "HELO/EHLO");
		return;
	}
	if (s->in_tx) {
		session_reply_error(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (smtp_mail_parse(arg, &s->offer, &args, &err) < 0) {
		session_reply_parse_error(s, &err);
		return;
	}
	if (args.size > (uint64_t)s->ctx->conf->message_size_limit) {
		session_reply_error(s, 552, "5.3.4", "Error: message size exceeds fixed maximum message size");
		return;
	}
	if (session_low_on_disk(s, args.size)) {
		log_warn("reject: MAIL from [%s]: 452 4.3.1 insufficient system storage", s->addr);
		session_reply(s, 452, "4.3.1", "Error: insufficient system storage");
		return;
	}
	session_begin_tx(s, &args);
	session_reply(s, 250, "2.1.0", "Ok");
}

static void session_data(struct session *s, const char *arg)
{
	if (!s->in_tx) {
		session_reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->env.nrcpts == 0) {
		if (s->rcpt_rejected > 0)
			session_reply_error(s, 554, "5.5.1", "Error: no valid recipients");
		else
			session_reply_error(s, 503, "5.5.1", "Error: need RCPT command");
		return;
	}
	if (arg[0] != '\0') {
		session_reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (session_low_on_disk(s, 0)) {
		log_warn("reject: DATA from [%s]: 452 4.3.1 insufficient system storage", s->addr);
		session_reply(s, 452, "4.3.1", "Error: insufficient system storage");
		return;
	}
	session_data_start(s);
}

static void session_starttls(struct session *s, const char *arg)
{
	if (s->lmtp || s->ctx->tls == NULL) {
		session_reply_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->tls) {
		session_reply_error(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (arg[0] != '\0') {
		session_reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->in_tx) {
		session_reply_error(s, 503, "5.5.1", "Error: STARTTLS inside a mail transaction");
		return;
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* RFC 3207 4.2: forget what the client said before the handshake. */
	s->greeted = false;
	s->helo[0] = '\0';
	s->offer = (struct smtp_offer){ 0 };
	session_start_tls(s);
}

static void session_simple(struct session *s, enum smtp_verb verb, const char *arg)
{
	switch (verb) {
	case SMTP_VERB_RSET:
		session_reset_tx(s);
		session_reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_VERB_NOOP:
		session_reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_VERB_VRFY:
		if (arg[0] == '\0')
			session_reply_error(s, 501, "5.5.4", "Syntax: VRFY address");
		else
			session_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case SMTP_VERB_HELP:
		session_reply(s, 214, "2.0.0", "Commands: %s MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s",
			      s->lmtp ? "LHLO" : "HELO EHLO", s->ctx->tls && !s->lmtp ? " STARTTLS" : "");
		break;
	case SMTP_VERB_QUIT:
		session_reply(s, 221, "2.0.0", "Bye");
		session_close(s);
		break;
	case SMTP_VERB_EXPN:
	case SMTP_VERB_BDAT:
	case SMTP_VERB_AUTH:
		session_reply_error(s, 502, "5.5.1", "Error: command not implemented");
		break;
	default:
		session_reply_error(s, 500, "5.5.1", "Error: command not recognized");
		break;
	}
}

static void session_count(struct session *s, enum smtp_verb verb)
{
	unsigned *c = verb == SMTP_VERB_HELO ? &s->counts.helo
		    : verb == SMTP_VERB_EHLO || verb == SMTP_VERB_LHLO ? &s->counts.ehlo
		    : verb == SMTP_VERB_MAIL ? &s->counts.mail
		    : verb == SMTP_VERB_RCPT ? &s->counts.rcpt
		    : verb == SMTP_VERB_DATA ? &s->counts.data
		    : verb == SMTP_VERB_RSET ? &s->counts.rset
		    : verb == SMTP_VERB_QUIT ? &s->counts.quit
		    : verb == SMTP_VERB_STARTTLS ? &s->counts.starttls : &s->counts.other;
	(*c)++;
}

void session_command(struct session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	struct smtp_error err;
	if (smtp_command_parse(line, len, &cmd, &err) < 0) {
		s->counts.other++;
		session_reply_parse_error(s, &err);
		return;
	}
	session_count(s, cmd.verb);
	switch (cmd.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_LHLO:
		session_hello(s, cmd.verb, cmd.arg);
		break;
	case SMTP_VERB_MAIL:
		session_mail(s, cmd.arg);
		break;
	case SMTP_VERB_RCPT:
		session_rcpt(s, cmd.arg);
		break;
	case SMTP_VERB_DATA:
		session_data(s, cmd.arg);
		break;
	case SMTP_VERB_STARTTLS:
		session_starttls(s, cmd.arg);
		break;
	default:
		session_simple(s, cmd.verb, cmd.arg);
		break;
	}
}
