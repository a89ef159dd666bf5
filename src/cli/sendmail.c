/* sendmail-compatible submission: writes into maildrop/ with the same durability as the
   daemon's queue, whether or not the daemon runs; the daemon picks it up. */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sendmail.h"
#include "conf/config.h"
#include "msg/addrlist.h"
#include "msg/address.h"
#include "queue/qfile.h"
#include "queue/spool.h"
#include "smtp/command.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

/* Every failure ends the command with one line on stderr and a sysexits code. */
static int sendmail_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sendmail_fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sendmail: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

static int sendmail_usage(void)
{
	return sendmail_fail(EX_USAGE, "usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] "
				       "[-R full|hdrs] [-V envid] [-C config] [-bs|-bm] [recipient ...]");
}

/* -o takes sendmail's old one-letter options; only -oi changes anything here. */
static int sendmail_option_o(struct sendmail *sm, const char *arg)
{
	if (strcmp(arg, "i") == 0)
		sm->ignore_dots = true;
	return 0;
}

static int sendmail_option_b(struct sendmail *sm, const char *arg)
{
	if (strcmp(arg, "s") == 0)
		sm->smtp_stdio = true;
	else if (strcmp(arg, "m") != 0)
		return sendmail_fail(EX_USAGE, "-b%s is not supported (only -bm and -bs)", arg);
	return 0;
}

static int sendmail_option_notify(struct sendmail *sm, const char *arg)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", arg);
	sm->notify = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(t, "never") == 0)
			sm->notify |= SMTP_NOTIFY_NEVER;
		else if (strcasecmp(t, "success") == 0)
			sm->notify |= SMTP_NOTIFY_SUCCESS;
		else if (strcasecmp(t, "failure") == 0)
			sm->notify |= SMTP_NOTIFY_FAILURE;
		else if (strcasecmp(t, "delay") == 0)
			sm->notify |= SMTP_NOTIFY_DELAY;
		else
			return sendmail_fail(EX_USAGE, "-N: unknown notification '%s'", t);
	}
	if ((sm->notify & SMTP_NOTIFY_NEVER) && sm->notify != SMTP_NOTIFY_NEVER)
		return sendmail_fail(EX_USAGE, "-N: 'never' cannot be combined");
	return 0;
}

static int sendmail_option(struct sendmail *sm, int c, const char *arg)
{
	switch (c) {
	case 't': sm->extract = true; return 0;
	case 'i': sm->ignore_dots = true; return 0;
	case 'f': case 'r': sm->sender = arg; return 0;
	case 'F': sm->full_name = arg; return 0;
	case 'C': sm->config = arg; return 0;
	case 'o': return sendmail_option_o(sm, arg);
	case 'b': return sendmail_option_b(sm, arg);
	case 'N': return sendmail_option_notify(sm, arg);
	case 'R':
		if (strcasecmp(arg, "full") && strcasecmp(arg, "hdrs"))
			return sendmail_fail(EX_USAGE, "-R takes full or hdrs");
		sm->ret = strcasecmp(arg, "full") == 0 ? "FULL" : "HDRS";
		return 0;
	case 'V': sm->envid = arg; return 0;
	case 'v': case 'B': case 'h': case 'L': case 'U': case 'G': case 'X':
		return 0; /* accepted for compatibility, no effect */
	case 'q':
		return sendmail_fail(EX_USAGE, "queue runs are the daemon's job (-q not supported)");
	default:
		return sendmail_usage();
	}
}

static int sendmail_parse_args(struct sendmail *sm, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+tif:r:F:C:o:b:N:R:V:vB:h:L:UGX:q::", longopts, NULL)) != -1) {
		if ((rc = sendmail_option(sm, c, optarg)) != 0)
			return rc;
	}
	sm->rcpt_args = argv + optind;
	sm->nrcpt_args = argc - optind;
	return 0;
}

/* Reads one line without its LF (and a CR before it). Returns its length, or -1 at end of
   input or at a lone "." when dots end the message. */
static ssize_t sendmail_getline(struct sendmail *sm, char **line, size_t *cap)
{
	if (sm->eof)
		return -1;
	ssize_t n = getline(line, cap, stdin);
	if (n < 0) {
		sm->eof = true;
		return -1;
	}
	if (n > 0 && (*line)[n - 1] == '\n')
		n--;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	(*line)[n] = '\0';
	if (!sm->ignore_dots && n == 1 && (*line)[0] == '.') {
		sm->eof = true;
		return -1;
	}
	return n;
}

static bool sendmail_is_header(const char *line, size_t n, bool have_headers)
{
	if ((line[0] == ' ' || line[0] == '\t') && n > 0)
		return have_headers;
	size_t i = 0;
	while (i < n && line[i] > 32 && line[i] < 127 && line[i] != ':')
		i++;
	return i > 0 && i < n && line[i] == ':';
}

static int sendmail_account(struct sendmail *sm, const char *line, size_t n)
{
	sm->size += n + 2;
	if (memchr(line, '\0', n) != NULL)
		return sendmail_fail(EX_DATAERR, "message contains a NUL byte");
	if (sm->size > (unsigned long long)sm->conf->message_size_limit)
		return sendmail_fail(EX_DATAERR, "message exceeds message_size_limit (%lld bytes)",
				     (long long)sm->conf->message_size_limit);
	return 0;
}

/* The header block is held in memory (bounded by header_size_limit) because -t needs its
   recipients before the envelope can be written. */
static int sendmail_read_headers(struct sendmail *sm)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while ((n = sendmail_getline(sm, &line, &cap)) >= 0) {
		if ((rc = sendmail_account(sm, line, (size_t)n)) != 0)
			break;
		if (n == 0 || !sendmail_is_header(line, (size_t)n, sm->headers.len > 0)) {
			buf_append(&sm->first_body_line, line, (size_t)n);
			sm->has_body_line = true;
			break;
		}
		buf_append(&sm->headers, line, (size_t)n);
		buf_puts(&sm->headers, "\r\n");
		if ((int64_t)sm->headers.len > sm->conf->header_size_limit) {
			rc = sendmail_fail(EX_DATAERR, "message header exceeds header_size_limit");
			break;
		}
	}
	free(line);
	return rc;
}

static const char *sendmail_hostname(const struct sendmail *sm)
{
	static char name[256];
	if (name[0] == '\0')
		config_hostname(sm->conf, name, sizeof(name));
	return name;
}

/* A bare local name (cron's "root") is qualified with our host name, as sendmail does. */
static int sendmail_mailbox(const struct sendmail *sm, const char *in, struct address *a,
			    const char **error_r)
{
	char qualified[1024];
	if (strchr(in, '@') == NULL && strcasecmp(in, "postmaster") != 0) {
		snprintf(qualified, sizeof(qualified), "%s@%s", in, sendmail_hostname(sm));
		in = qualified;
	}
	return address_parse_mailbox(in, ADDRESS_ALLOW_UTF8 | ADDRESS_ALLOW_POSTMASTER, a, error_r);
}

struct sendmail_rcpt_ctx {
	struct sendmail *sm;
	int fail_code;
};

static void sendmail_add_rcpt(void *arg, const char *addr)
{
	struct sendmail_rcpt_ctx *rc = arg;
	struct sendmail *sm = rc->sm;
	struct address a;
	const char *error;
	if (sendmail_mailbox(sm, addr, &a, &error) < 0) {
		if (sm->status == 0)
			sm->status = sendmail_fail(rc->fail_code, "bad recipient address <%s>: %s", addr, error);
		return;
	}
	for (size_t i = 0; i < sm->env.nrcpts; i++) {
		if (strcmp(sm->env.rcpts[i].address, a.mailbox) == 0)
			return;
	}
	if (a.flags & ADDRESS_UTF8)
		sm->env.smtputf8 = true;
	queue_envelope_add_rcpt(&sm->env, a.mailbox, sm->notify, NULL);
}

/* Calls fn for each header field (unfolded value) of the held header block. */
static void sendmail_each_field(struct sendmail *sm,
				void (*fn)(struct sendmail *, const char *name, size_t nlen,
					   const char *value))
{
	struct buf value = { 0 };
	const char *p = buf_str(&sm->headers), *end = p + sm->headers.len;
	while (p < end) {
		const char *eol = strstr(p, "\r\n");
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		size_t nlen = colon ? (size_t)(colon - p) : 0;
		buf_reset(&value);
		if (colon != NULL)
			buf_append(&value, colon + 1, (size_t)(eol - colon - 1));
		p = eol + 2;
		while (p < end && (*p == ' ' || *p == '\t')) {
			eol = strstr(p, "\r\n");
			buf_append(&value, p, (size_t)(eol - p));
			p = eol + 2;
		}
		if (colon != NULL)
			fn(sm, colon - nlen, nlen, buf_str(&value));
	}
	buf_free(&value);
}

static bool sendmail_field_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static void sendmail_extract_field(struct sendmail *sm, const char *name, size_t nlen,
				   const char *value)
{
	if (sendmail_field_is(name, nlen, "To") || sendmail_field_is(name, nlen, "Cc") ||
	    sendmail_field_is(name, nlen, "Bcc")) {
		struct sendmail_rcpt_ctx rc = { sm, EX_DATAERR };
		addrlist_each(value, sendmail_add_rcpt, &rc);
	}
}

static int sendmail_recipients(struct sendmail *sm)
{
	struct sendmail_rcpt_ctx rc = { sm, EX_USAGE };
	for (int i = 0; i < sm->nrcpt_args; i++) {
		if (addrlist_each(sm->rcpt_args[i], sendmail_add_rcpt, &rc) == 0)
			sendmail_add_rcpt(&rc, sm->rcpt_args[i]);
	}
	if (sm->extract)
		sendmail_each_field(sm, sendmail_extract_field);
	if (sm->status != 0)
		return sm->status;
	if (sm->env.nrcpts == 0)
		return sendmail_fail(EX_USAGE, "no recipients given%s", sm->extract ? " or found in To/Cc/Bcc" : "");
	return 0;
}

static int sendmail_sender(struct sendmail *sm)
{
	char user[512];
	const char *from = sm->sender;
	if (from == NULL) {
		struct passwd *pw = getpwuid(getuid());
		snprintf(user, sizeof(user), "%s", pw != NULL ? pw->pw_name : "nobody");
		from = user;
	}
	if (strcmp(from, "") == 0 || strcmp(from, "<>") == 0) {
		queue_envelope_set(&sm->env.sender, "");
		return 0;
	}
	struct address a;
	const char *error;
	if (sendmail_mailbox(sm, from, &a, &error) < 0)
		return sendmail_fail(EX_USAGE, "bad sender address <%s>: %s", from, error);
	if (a.flags & ADDRESS_UTF8)
		sm->env.smtputf8 = true;
	queue_envelope_set(&sm->env.sender, a.mailbox);
	return 0;
}

static int sendmail_envelope(struct sendmail *sm)
{
	struct queue_envelope *env = &sm->env;
	queue_id_new(env->id);
	env->arrival_us = time_now_us();
	queue_envelope_set(&env->origin, "sendmail");
	queue_envelope_set(&env->proto, "local");
	queue_envelope_set(&env->ret, sm->ret);
	queue_envelope_set(&env->full_name, sm->full_name);
	if (sm->envid != NULL) {
		char xt[PROTO_ENVID_MAX * 3 + 1];
		if (strlen(sm->envid) > PROTO_ENVID_MAX || xtext_encode(sm->envid, xt, sizeof(xt)) < 0)
			return sendmail_fail(EX_USAGE, "-V: envelope ID longer than %d characters", PROTO_ENVID_MAX);
		queue_envelope_set(&env->envid, xt);
	}
	return 0;
}

/* Bcc is dropped from every local submission: its recipients are in the envelope, and the
   other recipients must not see them. */
static int sendmail_write_headers(struct sendmail *sm, struct qfile *qf)
{
	const char *p = buf_str(&sm->headers), *end = p + sm->headers.len;
	bool dropping = false;
	while (p < end) {
		const char *eol = strstr(p, "\r\n") + 2;
		if (*p != ' ' && *p != '\t')
			dropping = strncasecmp(p, "Bcc:", 4) == 0;
		if (!dropping && qfile_write(qf, p, (size_t)(eol - p)) < 0)
			return -1;
		p = eol;
	}
	return 0;
}

static int sendmail_write_body(struct sendmail *sm, struct qfile *qf)
{
	if (sm->has_body_line && (qfile_write(qf, sm->first_body_line.data ? sm->first_body_line.data : "",
					      sm->first_body_line.len) < 0 ||
				  qfile_write(qf, "\r\n", 2) < 0))
		return -1;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = sendmail_getline(sm, &line, &cap)) >= 0) {
		if ((rc = sendmail_account(sm, line, (size_t)n)) != 0)
			break;
		if (qfile_write(qf, line, (size_t)n) < 0 || qfile_write(qf, "\r\n", 2) < 0)
			rc = -1;
	}
	free(line);
	return rc;
}

static int sendmail_store(struct sendmail *sm)
{
	struct qfile *qf;
	if (qfile_create(sm->spool, &sm->env, &qf) < 0)
		return sendmail_fail(EX_TEMPFAIL, "cannot create queue file: %s", strerror(errno));
	int rc = sendmail_write_headers(sm, qf);
	if (rc == 0)
		rc = sendmail_write_body(sm, qf);
	if (rc == 0 && qfile_finish(qf) < 0)
		rc = -1;
	if (rc != 0) {
		int err = qfile_error(qf);
		qfile_abort(&qf);
		return rc > 0 ? rc : sendmail_fail(EX_TEMPFAIL, "cannot write queue file: %s", strerror(err));
	}
	if (qfile_commit_sync(sm->spool, &qf, SPOOL_MAILDROP) < 0)
		return sendmail_fail(EX_TEMPFAIL, "cannot queue message: %s", strerror(errno));
	return 0;
}

static int sendmail_submit(struct sendmail *sm)
{
	int64_t avail = spool_free_bytes(sm->spool);
	if (sm->conf->disk_reserve > 0 && avail >= 0 && avail < sm->conf->disk_reserve)
		return sendmail_fail(EX_TEMPFAIL, "insufficient disk space in %s", spool_root(sm->spool));
	int rc = sendmail_read_headers(sm);
	if (rc == 0)
		rc = sendmail_envelope(sm);
	if (rc == 0)
		rc = sendmail_sender(sm);
	if (rc == 0)
		rc = sendmail_recipients(sm);
	if (rc == 0)
		rc = sendmail_store(sm);
	return rc;
}

static int sendmail_open(struct sendmail *sm)
{
	char *errors;
	const char *path = cli_config_path(sm->config);
	if (config_load(path, &sm->conf, &errors) < 0) {
		config_print_errors(stderr, errors);
		free(errors);
		return sendmail_fail(EX_CONFIG, "configuration errors in %s", path);
	}
	const char *error;
	if (spool_open(sm->conf->state_dir, &sm->spool, &error) < 0)
		return sendmail_fail(errno == EACCES ? EX_NOPERM : EX_TEMPFAIL, "%s", error);
	return 0;
}

int cli_sendmail(int argc, char **argv)
{
	struct sendmail sm = { 0 };
	int rc = sendmail_parse_args(&sm, argc, argv);
	if (rc == 0)
		rc = sendmail_open(&sm);
	if (rc == 0)
		rc = sm.smtp_stdio ? sendmail_smtp_stdio(&sm) : sendmail_submit(&sm);
	queue_envelope_clear(&sm.env);
	buf_free(&sm.headers);
	buf_free(&sm.first_body_line);
	spool_free(&sm.spool);
	config_free(&sm.conf);
	return rc;
}
