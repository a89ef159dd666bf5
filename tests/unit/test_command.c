#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp/command.h"

/* Failures name the table case, which a bare assert_* would not. */
static void expect_str(size_t i, const char *what, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("case %zu: %s is \"%s\", expected \"%s\"", i, what, got ? got : "(null)",
			 want);
}

static void expect_int(size_t i, const char *what, long long got, long long want)
{
	if (got != want)
		fail_msg("case %zu: %s is %lld, expected %lld", i, what, got, want);
}

/* ---- smtp_command_parse ---- */

struct line_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	int rc;
	enum smtp_verb verb;
	const char *arg;
};

static const struct line_case line_cases[] = {
	{ "MAIL FROM:<a@b>", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b>" },
	{ "mail from:<a@b>", 0, 0, SMTP_VERB_MAIL, "from:<a@b>" },
	{ "Rcpt TO:<a@b>", 0, 0, SMTP_VERB_RCPT, "TO:<a@b>" },
	{ "QUIT", 0, 0, SMTP_VERB_QUIT, "" },
	{ "QUIT   ", 0, 0, SMTP_VERB_QUIT, "" },
	{ "EHLO  client.example", 0, 0, SMTP_VERB_EHLO, "client.example" },
	{ "HELO client.example", 0, 0, SMTP_VERB_HELO, "client.example" },
	{ "LHLO client.example", 0, 0, SMTP_VERB_LHLO, "client.example" },
	{ "StartTLS", 0, 0, SMTP_VERB_STARTTLS, "" },
	{ "BDAT 100 LAST", 0, 0, SMTP_VERB_BDAT, "100 LAST" },
	{ "DATA", 0, 0, SMTP_VERB_DATA, "" },
	{ "rset", 0, 0, SMTP_VERB_RSET, "" },
	{ "NOOP hello there", 0, 0, SMTP_VERB_NOOP, "hello there" },
	{ "NOOP a\tb", 0, 0, SMTP_VERB_NOOP, "a\tb" },
	{ "VRFY user", 0, 0, SMTP_VERB_VRFY, "user" },
	{ "EXPN list", 0, 0, SMTP_VERB_EXPN, "list" },
	{ "HELP", 0, 0, SMTP_VERB_HELP, "" },
	{ "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0, 0, SMTP_VERB_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	{ "HELO h\xc3\xa9", 0, 0, SMTP_VERB_HELO, "h\xc3\xa9" },
	{ "XYZZY foo", 0, 0, SMTP_VERB_UNKNOWN, "foo" },
	{ "MAILFROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "MAIL\tFROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ " MAIL FROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "MAIL FROM:<a@b>" },
	{ "MAIL1 x", 0, 0, SMTP_VERB_UNKNOWN, "x" },
	{ "STARTTLSX", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "ST", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "   ", 0, 0, SMTP_VERB_UNKNOWN, "" },
	{ "", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP\0x", 6, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "QUIT\0", 5, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "\0QUIT", 5, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP\rx", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP x\nRSET", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP\x7f", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "NOOP \x1b[0m", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	{ "MAIL FROM:<a@b>\x01", 0, -1, SMTP_VERB_UNKNOWN, NULL },
	/* len is authoritative: the bytes after it are not looked at */
	{ "QUIT\r\n", 4, 0, SMTP_VERB_QUIT, "" },
};

static void test_command_lines(void **state)
{
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const struct line_case *c = &line_cases[i];
		struct smtp_command cmd;
		struct smtp_error err = { 0 };
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		char copy[64];
		/* The argument is read as a C string, so give it a NUL-terminated line. */
		memcpy(copy, c->line, len);
		copy[len] = '\0';
		int rc = smtp_command_parse(copy, len, &cmd, &err);
		expect_int(i, "rc", rc, c->rc);
		if (rc < 0) {
			expect_int(i, "code", err.code, 500);
			expect_str(i, "status", err.status, "5.5.2");
			continue;
		}
		expect_int(i, "verb", cmd.verb, c->verb);
		expect_str(i, "arg", cmd.arg, c->arg);
	}
}

/* ---- smtp_mail_parse ---- */

#define OS (1u << 0) /* SIZE */
#define O8 (1u << 1) /* 8BITMIME */
#define OU (1u << 2) /* SMTPUTF8 */
#define OD (1u << 3) /* DSN */
#define OALL (OS | O8 | OU | OD)

static struct smtp_offer offer_of(unsigned bits)
{
	struct smtp_offer o = {
		.size = bits & OS,
		.eightbitmime = bits & O8,
		.smtputf8 = bits & OU,
		.dsn = bits & OD,
	};
	return o;
}

struct mail_case {
	const char *arg;
	unsigned offer;
	int code; /* 0: success */
	const char *status;
	const char *mailbox;
	unsigned flags;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	const char *envid;
};

#define MOK(arg, ...) { arg, OALL, 0, NULL, __VA_ARGS__ }
#define MERR(arg, offer, code, status) { arg, offer, code, status, NULL, 0, 0, 0, false, 0, NULL }

static const struct mail_case mail_cases[] = {
	MOK("FROM:<a@b.example>", "a@b.example", 0, 0, 0, false, 0, ""),
	MOK("from:<A@B.Example>", "A@b.example", 0, 0, 0, false, 0, ""),
	MOK("FROM: <a@b.example>", "a@b.example", 0, 0, 0, false, 0, ""),
	MOK("FROM:   <a@b.example>", "a@b.example", 0, 0, 0, false, 0, ""),
	MOK("FROM:<>", "", ADDRESS_NULL, 0, 0, false, 0, ""),
	MOK("FROM:<> SIZE=100", "", ADDRESS_NULL, 100, 0, false, 0, ""),
	MOK("FROM:<@r.example:a@b.example>", "a@b.example", ADDRESS_ROUTE, 0, 0, false, 0, ""),
	MOK("FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]", ADDRESS_LITERAL, 0, 0, false, 0, ""),
	MOK("FROM:<\"a b\"@x>", "\"a b\"@x", 0, 0, 0, false, 0, ""),
	/* SIZE */
	MOK("FROM:<a@b> SIZE=12345", "a@b", 0, 12345, 0, false, 0, ""),
	MOK("FROM:<a@b> size=0", "a@b", 0, 0, 0, false, 0, ""),
	MOK("FROM:<a@b> SIZE=18446744073709551615", "a@b", 0, UINT64_MAX, 0, false, 0, ""),
	MOK("FROM:<a@b> SIZE=00000000000000000001", "a@b", 0, 1, 0, false, 0, ""),
	MERR("FROM:<a@b> SIZE=18446744073709551616", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=99999999999999999999", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=000000000000000000001", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=12a", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=-1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=+1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1=2", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1\x80", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1 SIZE=2", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1 size=1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1", O8 | OU | OD, 555, "5.5.4"),
	/* BODY */
	MOK("FROM:<a@b> BODY=8BITMIME", "a@b", 0, 0, SMTP_BODY_8BITMIME, false, 0, ""),
	MOK("FROM:<a@b> body=7bit", "a@b", 0, 0, SMTP_BODY_7BIT, false, 0, ""),
	MOK("FROM:<a@b> Body=8bitMime", "a@b", 0, 0, SMTP_BODY_8BITMIME, false, 0, ""),
	MERR("FROM:<a@b> BODY=BINARYMIME", OALL, 555, "5.5.4"),
	MERR("FROM:<a@b> BODY=9BIT", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> BODY=8BITMIMEX", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> BODY", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> BODY=8BITMIME", OS | OU | OD, 555, "5.5.4"),
	MERR("FROM:<a@b> BODY=7BIT BODY=8BITMIME", OALL, 501, "5.5.4"),
	/* SMTPUTF8 and UTF-8 addresses (RFC 6531 3.4, 3.5) */
	MOK("FROM:<a@b> SMTPUTF8", "a@b", 0, 0, 0, true, 0, ""),
	MOK("FROM:<j\xc3\xb6s@b.example> SMTPUTF8", "j\xc3\xb6s@b.example", ADDRESS_UTF8, 0, 0,
	    true, 0, ""),
	MOK("FROM:<a@b\xc3\xa9.example> smtputf8 BODY=8BITMIME", "a@b\xc3\xa9.example",
	    ADDRESS_UTF8, 0, SMTP_BODY_8BITMIME, true, 0, ""),
	MERR("FROM:<a@b> SMTPUTF8=yes", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SMTPUTF8=", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SMTPUTF8 SMTPUTF8", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SMTPUTF8", OS | O8 | OD, 555, "5.5.4"),
	MERR("FROM:<j\xc3\xb6s@b.example>", OALL, 553, "5.6.7"),
	MERR("FROM:<j\xc3\xb6s@b.example> SIZE=10", OALL, 553, "5.6.7"),
	MERR("FROM:<j\xc3\xb6s@b.example>", OS | O8 | OD, 553, "5.6.7"),
	MERR("FROM:<j\xc3\xb6s@b.example> SMTPUTF8", OS | O8 | OD, 555, "5.5.4"),
	MERR("FROM:<j\xc3@b.example> SMTPUTF8", OALL, 501, "5.1.7"),
	MERR("FROM:<\xc0\xaf@b.example> SMTPUTF8", OALL, 501, "5.1.7"),
	MERR("FROM:<\xed\xa0\x80@b.example> SMTPUTF8", OALL, 501, "5.1.7"),
	/* RET and ENVID */
	MOK("FROM:<a@b> RET=FULL", "a@b", 0, 0, 0, false, SMTP_RET_FULL, ""),
	MOK("FROM:<a@b> ret=hdrs", "a@b", 0, 0, 0, false, SMTP_RET_HDRS, ""),
	MOK("FROM:<a@b> ENVID=QQ314159", "a@b", 0, 0, 0, false, 0, "QQ314159"),
	MOK("FROM:<a@b> ENVID=a+2Bb+3Dc", "a@b", 0, 0, 0, false, 0, "a+b=c"),
	MOK("FROM:<a@b> ENVID=a+20b", "a@b", 0, 0, 0, false, 0, "a b"),
	MERR("FROM:<a@b> RET=ALL", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> RET", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> RET=FULL RET=HDRS", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> RET=FULL", OS | O8 | OU, 555, "5.5.4"),
	MERR("FROM:<a@b> ENVID=a+2bb", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=abc+", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=abc+4", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=abc+4G", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=+0D+0A", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=x+00y", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=+C3+A9", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=a\xc3\xa9", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=x ENVID=y", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> ENVID=x", OS | O8 | OU, 555, "5.5.4"),
	/* parameters that MAIL does not take, and bad keyword syntax */
	MERR("FROM:<a@b> NOTIFY=NEVER", OALL, 555, "5.5.4"),
	MERR("FROM:<a@b> ORCPT=rfc822;a@b", OALL, 555, "5.5.4"),
	MERR("FROM:<a@b> X-FOO=bar", OALL, 555, "5.5.4"),
	MERR("FROM:<a@b> AUTH=<>", OALL, 555, "5.5.4"),
	MERR("FROM:<a@b> =x", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> -X=1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SI_ZE=1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> X\x80=1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b> SIZE=1\tBODY=7BIT", OALL, 501, "5.5.4"),
	MOK("FROM:<a@b>  SIZE=1   BODY=8BITMIME  ", "a@b", 0, 1, SMTP_BODY_8BITMIME, false, 0, ""),
	MOK("FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id1", "a@b", 0, 10,
	    SMTP_BODY_8BITMIME, true, SMTP_RET_HDRS, "id1"),
	MOK("FROM:<a@b> envid=id1 ret=full smtputf8 body=7bit size=7", "a@b", 0, 7, SMTP_BODY_7BIT,
	    true, SMTP_RET_FULL, "id1"),
	/* the FROM: keyword and the path */
	MERR("FROM <a@b>", OALL, 501, "5.5.4"),
	MERR("<a@b>", OALL, 501, "5.5.4"),
	MERR("FRO:<a@b>", OALL, 501, "5.5.4"),
	MERR("FROM :<a@b>", OALL, 501, "5.5.4"),
	MERR("", OALL, 501, "5.5.4"),
	MERR("TO:<a@b>", OALL, 501, "5.5.4"),
	MERR("FROM:", OALL, 501, "5.1.7"),
	MERR("FROM:a@b.example", OALL, 501, "5.1.7"),
	MERR("FROM:<a@b.example", OALL, 501, "5.1.7"),
	MERR("FROM:a@b.example>", OALL, 501, "5.1.7"),
	MERR("FROM:<postmaster>", OALL, 501, "5.1.7"),
	MERR("FROM:<a..b@c>", OALL, 501, "5.1.7"),
	MERR("FROM:<a@[300.1.1.1]>", OALL, 501, "5.1.7"),
	MERR("FROM:\t<a@b>", OALL, 501, "5.1.7"),
	MERR("FROM:<a@b>x", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b>>", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b>\tSIZE=1", OALL, 501, "5.5.4"),
	MERR("FROM:<a@b>SIZE=1", OALL, 501, "5.5.4"),
};

static void check_mail(size_t i, const struct mail_case *c, const struct smtp_offer *offer)
{
	struct smtp_mail_args args;
	struct smtp_error err = { 0 };
	int rc = smtp_mail_parse(c->arg, offer, &args, &err);

	expect_int(i, "rc", rc, c->code == 0 ? 0 : -1);
	if (rc < 0) {
		expect_int(i, "code", err.code, c->code);
		expect_str(i, "status", err.status, c->status);
		if (err.text == NULL || err.text[0] == '\0')
			fail_msg("case %zu: no error text", i);
		return;
	}
	expect_str(i, "mailbox", args.from.mailbox, c->mailbox);
	expect_int(i, "flags", args.from.flags, c->flags);
	expect_int(i, "size", (long long)args.size, (long long)c->size);
	expect_int(i, "body", args.body, c->body);
	expect_int(i, "smtputf8", args.smtputf8, c->smtputf8);
	expect_int(i, "ret", args.ret, c->ret);
	expect_str(i, "envid", args.envid, c->envid);
}

static void test_mail_table(void **state)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		struct smtp_offer offer = offer_of(mail_cases[i].offer);
		check_mail(i, &mail_cases[i], &offer);
	}
}

/* A NULL offer means nothing was offered. */
static void test_mail_no_offer(void **state)
{
	struct smtp_mail_args args;
	struct smtp_error err;

	assert_int_equal(smtp_mail_parse("FROM:<a@b>", NULL, &args, &err), 0);
	assert_int_equal(smtp_mail_parse("FROM:<a@b> SIZE=1", NULL, &args, &err), -1);
	assert_int_equal(err.code, 555);
}

/* ENVID may decode to 100 octets, no more (RFC 3461 4.4). */
static void test_mail_envid_length(void **state)
{
	char arg[400];
	struct smtp_mail_args args;
	struct smtp_error err;
	int n = snprintf(arg, sizeof(arg), "FROM:<a@b> ENVID=");

	memset(arg + n, 'e', 99);
	strcpy(arg + n + 99, "+2B");
	struct smtp_offer offer = offer_of(OALL);
	assert_int_equal(smtp_mail_parse(arg, &offer, &args, &err), 0);
	assert_int_equal(strlen(args.envid), 100);
	strcpy(arg + n + 99, "+2Bx");
	assert_int_equal(smtp_mail_parse(arg, &offer, &args, &err), -1);
	assert_int_equal(err.code, 501);
	assert_string_equal(err.status, "5.5.4");
}

/* ---- smtp_rcpt_parse ---- */

struct rcpt_case {
	const char *arg;
	unsigned offer;
	bool smtputf8;
	int code; /* 0: success */
	const char *status;
	const char *mailbox;
	unsigned flags;
	unsigned notify;
	const char *orcpt_type, *orcpt;
};

#define ROK(arg, utf8, ...) { arg, OALL, utf8, 0, NULL, __VA_ARGS__ }
#define RERR(arg, offer, utf8, code, status) \
	{ arg, offer, utf8, code, status, NULL, 0, 0, NULL, NULL }

#define NS SMTP_NOTIFY_SUCCESS
#define NF SMTP_NOTIFY_FAILURE
#define ND SMTP_NOTIFY_DELAY

static const struct rcpt_case rcpt_cases[] = {
	ROK("TO:<a@b.example>", false, "a@b.example", 0, 0, "", ""),
	ROK("to: <a@B.example>", false, "a@b.example", 0, 0, "", ""),
	ROK("TO:<postmaster>", false, "postmaster", ADDRESS_POSTMASTER, 0, "", ""),
	ROK("TO:<PostMaster> NOTIFY=NEVER", false, "postmaster", ADDRESS_POSTMASTER,
	    SMTP_NOTIFY_NEVER, "", ""),
	ROK("TO:<@r:a@b>", false, "a@b", ADDRESS_ROUTE, 0, "", ""),
	ROK("TO:<a@[IPv6:::1]>", false, "a@[IPv6:::1]", ADDRESS_LITERAL, 0, "", ""),
	ROK("TO:<j\xc3\xb6s@b.example>", true, "j\xc3\xb6s@b.example", ADDRESS_UTF8, 0, "", ""),
	RERR("TO:<j\xc3\xb6s@b.example>", OALL, false, 553, "5.6.7"),
	RERR("TO:<a@\xc3\xa9.example>", OS | O8 | OD, false, 553, "5.6.7"),
	RERR("TO:<j\xc3@b.example>", OALL, true, 501, "5.1.3"),
	RERR("TO:<>", OALL, false, 501, "5.1.3"),
	RERR("TO:a@b", OALL, false, 501, "5.1.3"),
	RERR("TO:<a@b", OALL, false, 501, "5.1.3"),
	RERR("TO:", OALL, false, 501, "5.1.3"),
	RERR("TO:<a@-b>", OALL, false, 501, "5.1.3"),
	RERR("TO:<postmaster@>", OALL, false, 501, "5.1.3"),
	RERR("TO <a@b>", OALL, false, 501, "5.5.4"),
	RERR("FROM:<a@b>", OALL, false, 501, "5.5.4"),
	RERR("", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b>junk", OALL, false, 501, "5.5.4"),
	/* NOTIFY */
	ROK("TO:<a@b> NOTIFY=NEVER", false, "a@b", 0, SMTP_NOTIFY_NEVER, "", ""),
	ROK("TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", false, "a@b", 0, NS | NF | ND, "", ""),
	ROK("TO:<a@b> notify=failure,delay", false, "a@b", 0, NF | ND, "", ""),
	ROK("TO:<a@b> NOTIFY=Delay", false, "a@b", 0, ND, "", ""),
	RERR("TO:<a@b> NOTIFY=NEVER,SUCCESS", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=FAILURE,NEVER", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=SUCCESS,SUCCESS", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=NEVER,NEVER", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=SUCCESS,", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=,SUCCESS", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=SUCCESS,,DELAY", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=ALWAYS", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=NEVER", OS | O8 | OU, false, 555, "5.5.4"),
	/* ORCPT, rfc822 */
	ROK("TO:<a@b> ORCPT=rfc822;a@b.example", false, "a@b", 0, 0, "rfc822", "a@b.example"),
	ROK("TO:<a@b> ORCPT=RFC822;a+2Bx@b.example", false, "a@b", 0, 0, "rfc822",
	    "a+x@b.example"),
	ROK("TO:<a@b> ORCPT=rfc822;+22a+20b+22@x", false, "a@b", 0, 0, "rfc822", "\"a b\"@x"),
	ROK("TO:<a@b> NOTIFY=SUCCESS ORCPT=rfc822;x@y", false, "a@b", 0, NS, "rfc822", "x@y"),
	RERR("TO:<a@b> ORCPT=rfc822;", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=;a@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=x400;foo", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a+0Ab@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a+00b@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a+2gb@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a+2@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a@c+", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;+C3+A9@x", OALL, true, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;+C3@x", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a+7Fb@x", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;\xc3\xa9@x", OALL, true, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a@b ORCPT=rfc822;c@d", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=rfc822;a@b", OS | O8 | OU, false, 555, "5.5.4"),
	/* ORCPT, utf-8 (RFC 6533) */
	ROK("TO:<a@b> ORCPT=utf-8;j\\x{F6}s@b.example", false, "a@b", 0, 0, "utf-8",
	    "j\xc3\xb6s@b.example"),
	ROK("TO:<a@b> ORCPT=UTF-8;a@b.example", false, "a@b", 0, 0, "utf-8", "a@b.example"),
	ROK("TO:<a@b> ORCPT=utf-8;a\\x{2B}b@c", false, "a@b", 0, 0, "utf-8", "a+b@c"),
	ROK("TO:<a@b> ORCPT=utf-8;\"a\\x{20}b\"@c", false, "a@b", 0, 0, "utf-8", "\"a b\"@c"),
	ROK("TO:<a@b> ORCPT=utf-8;\\x{1F600}@c", false, "a@b", 0, 0, "utf-8",
	    "\xf0\x9f\x98\x80@c"),
	ROK("TO:<a@b> ORCPT=utf-8;j\xc3\xb6s@b.example", true, "a@b", 0, 0, "utf-8",
	    "j\xc3\xb6s@b.example"),
	RERR("TO:<a@b> ORCPT=utf-8;j\xc3\xb6s@b.example", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;j\xc3s@b.example", OALL, true, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;\\x{D800}@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{110000}@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{}@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{41@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{0}@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\@b", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;noatsign", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{20}b@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a\\x{0A}b@c", OALL, false, 501, "5.5.4"),
	RERR("TO:<a@b> ORCPT=utf-8;a+2Bb@c", OALL, false, 501, "5.5.4"),
	/* parameters that RCPT does not take */
	RERR("TO:<a@b> SIZE=1", OALL, false, 555, "5.5.4"),
	RERR("TO:<a@b> BODY=8BITMIME", OALL, false, 555, "5.5.4"),
	RERR("TO:<a@b> SMTPUTF8", OALL, true, 555, "5.5.4"),
	RERR("TO:<a@b> X-FOO", OALL, false, 555, "5.5.4"),
	RERR("TO:<a@b> NOTIFY=NEVER=", OALL, false, 501, "5.5.4"),
};

static void test_rcpt_table(void **state)
{
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_offer offer = offer_of(c->offer);
		struct smtp_rcpt_args args;
		struct smtp_error err = { 0 };
		int rc = smtp_rcpt_parse(c->arg, &offer, c->smtputf8, &args, &err);
		expect_int(i, "rc", rc, c->code == 0 ? 0 : -1);
		if (rc < 0) {
			expect_int(i, "code", err.code, c->code);
			expect_str(i, "status", err.status, c->status);
			continue;
		}
		expect_str(i, "mailbox", args.to.mailbox, c->mailbox);
		expect_int(i, "flags", args.to.flags, c->flags);
		expect_int(i, "notify", args.notify, c->notify);
		expect_str(i, "orcpt_type", args.orcpt_type, c->orcpt_type);
		expect_str(i, "orcpt", args.orcpt, c->orcpt);
	}
}

/* ORCPT may decode to 500 octets, no more (RFC 3461 4.2). */
static void test_rcpt_orcpt_length(void **state)
{
	static char arg[2000];
	struct smtp_rcpt_args args;
	struct smtp_error err;
	struct smtp_offer offer = offer_of(OALL);
	int n = snprintf(arg, sizeof(arg), "TO:<a@b> ORCPT=rfc822;");

	memset(arg + n, 'o', 498);
	strcpy(arg + n + 498, "+40");
	strcat(arg, "x");
	assert_int_equal(smtp_rcpt_parse(arg, &offer, false, &args, &err), 0);
	assert_int_equal(strlen(args.orcpt), 500);
	strcat(arg, "y");
	assert_int_equal(smtp_rcpt_parse(arg, &offer, false, &args, &err), -1);
	assert_int_equal(err.code, 501);
}

/* ---- xtext ---- */

struct xdecode_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	size_t dstlen;
	int rc;
	const char *out;
};

static const struct xdecode_case xdecode_cases[] = {
	{ "", 0, 8, 0, "" },
	{ "abc", 0, 8, 3, "abc" },
	{ "a+2Bb", 0, 8, 3, "a+b" },
	{ "+3D", 0, 8, 1, "=" },
	{ "+41", 0, 8, 1, "A" },
	{ "+C3+A9", 0, 8, 2, "\xc3\xa9" },
	{ "!~\\\"", 0, 8, 4, "!~\\\"" },
	{ "+00", 0, 8, 1, "" },
	{ "abcd", 0, 5, 4, "abcd" },
	{ "+2B+2B", 0, 3, 2, "++" },
	{ "abcd", 0, 4, -1, NULL },
	{ "+2B+2B", 0, 2, -1, NULL },
	{ "", 0, 0, -1, NULL },
	{ "a+", 0, 8, -1, NULL },
	{ "a+4", 0, 8, -1, NULL },
	{ "+4g", 0, 8, -1, NULL },
	{ "+2b", 0, 8, -1, NULL },
	{ "+g0", 0, 8, -1, NULL },
	{ "++41", 0, 8, -1, NULL },
	{ "a=b", 0, 8, -1, NULL },
	{ "=", 0, 8, -1, NULL },
	{ "a b", 0, 8, -1, NULL },
	{ "a\x7f", 0, 8, -1, NULL },
	{ "a\x1f", 0, 8, -1, NULL },
	{ "\xc3\xa9", 0, 8, -1, NULL },
	{ "a\0b", 3, 8, -1, NULL },
	{ "+4", 2, 8, -1, NULL },
	{ "+41", 2, 8, -1, NULL },
	{ "ab+41", 2, 8, 2, "ab" },
};

static void test_xtext_decode(void **state)
{
	for (size_t i = 0; i < sizeof(xdecode_cases) / sizeof(xdecode_cases[0]); i++) {
		const struct xdecode_case *c = &xdecode_cases[i];
		char dst[16];
		size_t len = c->len != 0 ? c->len : strlen(c->in);
		int rc = xtext_decode(c->in, len, dst, c->dstlen);
		expect_int(i, "rc", rc, c->rc);
		/* c->out may hold a decoded NUL ("+00"), so compare rc bytes, then the terminator. */
		if (rc >= 0 && (memcmp(dst, c->out, (size_t)rc) != 0 || dst[rc] != '\0'))
			fail_msg("case %zu: wrong output", i);
	}
}

struct xencode_case {
	const char *in;
	size_t dstlen;
	int rc;
	const char *out;
};

static const struct xencode_case xencode_cases[] = {
	{ "abc", 16, 3, "abc" },
	{ "a+b=c", 16, 9, "a+2Bb+3Dc" },
	{ "a b", 16, 5, "a+20b" },
	{ "\xc3\xa9", 16, 6, "+C3+A9" },
	{ "\x01\x7f", 16, 6, "+01+7F" },
	{ "~!\\", 16, 3, "~!\\" },
	{ "", 1, 0, "" },
	{ "abc", 4, 3, "abc" },
	{ "abc", 3, -1, "" },
	{ "+", 4, 3, "+2B" },
	{ "+", 3, -1, "" },
	{ "", 0, -1, NULL },
};

static void test_xtext_encode(void **state)
{
	for (size_t i = 0; i < sizeof(xencode_cases) / sizeof(xencode_cases[0]); i++) {
		const struct xencode_case *c = &xencode_cases[i];
		char dst[16] = "junk";
		int rc = xtext_encode(c->in, dst, c->dstlen);
		expect_int(i, "rc", rc, c->rc);
		if (c->out != NULL)
			expect_str(i, "out", dst, c->out);
	}
}

/* decode(encode(s)) == s for every byte value and some mixed strings. */
static void test_xtext_round_trip(void **state)
{
	char src[8], enc[32], dec[8];

	for (int b = 1; b < 256; b++) {
		snprintf(src, sizeof(src), "a%cz", b);
		int n = xtext_encode(src, enc, sizeof(enc));
		assert_true(n > 0);
		assert_int_equal(xtext_decode(enc, (size_t)n, dec, sizeof(dec)), 3);
		assert_memory_equal(dec, src, 4);
	}
}

struct uaddr_case {
	const char *in;
	bool allow_utf8;
	int rc;
	const char *out;
};

static const struct uaddr_case udecode_cases[] = {
	{ "a@b", false, 3, "a@b" },
	{ "j\\x{F6}s@b", false, 6, "j\xc3\xb6s@b" },
	{ "j\\x{f6}s@b", false, 6, "j\xc3\xb6s@b" },
	{ "\\x{41}", false, 1, "A" },
	{ "\\x{20AC}", false, 3, "\xe2\x82\xac" },
	{ "\\x{10FFFF}", false, 4, "\xf4\x8f\xbf\xbf" },
	{ "\\x{1F600}", false, 4, "\xf0\x9f\x98\x80" },
	{ "j\xc3\xb6s", true, 4, "j\xc3\xb6s" },
	{ "j\xc3\xb6s", false, -1, NULL },
	{ "j\xc3s", true, -1, NULL },
	{ "\xed\xa0\x80", true, -1, NULL },
	{ "\\x{0}", false, -1, NULL },
	{ "\\x{D800}", false, -1, NULL },
	{ "\\x{110000}", false, -1, NULL },
	{ "\\x{1234567}", false, -1, NULL },
	{ "\\x{}", false, -1, NULL },
	{ "\\x{41", false, -1, NULL },
	{ "\\x41", false, -1, NULL },
	{ "\\y{41}", false, -1, NULL },
	{ "\\x{4G}", false, -1, NULL },
	{ "\\", false, -1, NULL },
	{ "a+b", false, -1, NULL },
	{ "a=b", false, -1, NULL },
	{ "a b", false, -1, NULL },
};

static void test_utf8addr_decode(void **state)
{
	for (size_t i = 0; i < sizeof(udecode_cases) / sizeof(udecode_cases[0]); i++) {
		const struct uaddr_case *c = &udecode_cases[i];
		char dst[32];
		int rc = xtext_utf8addr_decode(c->in, strlen(c->in), c->allow_utf8, dst, sizeof(dst));
		expect_int(i, "rc", rc, c->rc);
		if (rc >= 0)
			expect_str(i, "out", dst, c->out);
	}
}

static const struct uaddr_case uencode_cases[] = {
	{ "a@b", false, 3, "a@b" },
	{ "j\xc3\xb6s@x", false, 10, "j\\x{F6}s@x" },
	{ "a+b=c\\", false, 21, "a\\x{2B}b\\x{3D}c\\x{5C}" },
	{ "a b\x01\x7f", false, 20, "a\\x{20}b\\x{01}\\x{7F}" },
	{ "\xe2\x82\xac", false, 8, "\\x{20AC}" },
	{ "\xf0\x9f\x98\x80", false, 9, "\\x{1F600}" },
	{ "\xc3", false, -1, "" },
	{ "\xed\xa0\x80", false, -1, "" },
};

static void test_utf8addr_encode(void **state)
{
	for (size_t i = 0; i < sizeof(uencode_cases) / sizeof(uencode_cases[0]); i++) {
		const struct uaddr_case *c = &uencode_cases[i];
		char enc[64], dec[64];
		int rc = xtext_utf8addr_encode(c->in, enc, sizeof(enc));
		expect_int(i, "rc", rc, c->rc);
		expect_str(i, "out", enc, c->out);
		if (rc < 0)
			continue;
		expect_int(i, "round trip rc", xtext_utf8addr_decode(enc, (size_t)rc, false, dec,
								     sizeof(dec)),
			   (long long)strlen(c->in));
		expect_str(i, "round trip", dec, c->in);
	}
	char small[8];
	assert_int_equal(xtext_utf8addr_encode("\xc3\xb6", small, 7), 6);
	assert_int_equal(xtext_utf8addr_encode("\xc3\xb6", small, 6), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_lines),
		cmocka_unit_test(test_mail_table),
		cmocka_unit_test(test_mail_no_offer),
		cmocka_unit_test(test_mail_envid_length),
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_rcpt_orcpt_length),
		cmocka_unit_test(test_xtext_decode),
		cmocka_unit_test(test_xtext_encode),
		cmocka_unit_test(test_xtext_round_trip),
		cmocka_unit_test(test_utf8addr_decode),
		cmocka_unit_test(test_utf8addr_encode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
