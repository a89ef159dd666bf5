#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msg/ndr.h"
#include "util/buf.h"

/* ndr_compose against a table of reports (kinds, recipients, RET, originals of every shape),
   each checked on the wire (CRLF, line length), for the fields it must and must not carry,
   and by Python's email package through ndr_check.py. */

#define HOST "mta.example.org"
#define NOW_US INT64_C(1700000000000000)     /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define ARRIVAL_US INT64_C(1699990000000000) /* Tue, 14 Nov 2023 19:26:40 +0000 */
#define LAST_US INT64_C(1699999000000000)    /* Tue, 14 Nov 2023 21:56:40 +0000 */
#define RETRY_US INT64_C(1700259200000000)   /* Fri, 17 Nov 2023 22:13:20 +0000 */
/* what precedes the content in the file, so that content_off is not 0 */
#define PREFIX "POSTERN-QUEUE 1\nsender alice@example.net\ncontent\n"

static const char ORIG_PLAIN[] = "From: Alice <alice@example.net>\r\nTo: bob@example.com\r\n"
				 "Subject: hello\r\nMessage-ID: <m1@example.net>\r\n\r\n"
				 "Hi Bob,\r\nsee you.\r\n";

static const char ORIG_NUL[] = "From: a@example.net\r\nX-Bad: a\0b\r\n\r\nHi Bob,\r\n";

enum orig {
	O_PLAIN,
	O_8BIT_BODY,  /* 8-bit body: message/rfc822 with 8bit */
	O_8BIT_HDR,   /* UTF-8 header: message/global(-headers) */
	O_NOSEP,      /* no empty line: all header */
	O_EMPTY,
	O_BARE_LF,    /* LF line ends, to be written as CRLF */
	O_LONG_LINE,  /* a 1200-octet body line: cannot be returned whole */
	O_NUL_HDR,    /* a NUL in the header: nothing can be returned */
	O_NO_HDR,     /* starts with the empty line */
	O_BIG_100K,   /* over NDR_RETURN_FULL_MAX */
	O_BIG_1M,     /* many chunks to stream */
};

/* The originals that are plain strings; the others are built by orig_make. */
static const char *const orig_text[] = {
	[O_PLAIN] = ORIG_PLAIN,
	[O_8BIT_BODY] = "From: a@example.net\r\nSubject: hi\r\n\r\nGr\xc3\xbc\xc3\x9f"
			"e aus K\xc3\xb6ln\r\n",
	[O_8BIT_HDR] = "From: a@example.net\r\nSubject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\nHi Bob,\r\n",
	[O_NOSEP] = "From: a@example.net\r\nSubject: no body\r\n",
	[O_EMPTY] = "",
	[O_BARE_LF] = "From: a@example.net\nSubject: lf\n\nHi Bob,\nline two\n",
	[O_NO_HDR] = "\r\nHi Bob,\r\n",
};

/* Fills b with the original of that shape. */
static void orig_make(enum orig o, struct buf *b)
{
	switch (o) {
	case O_LONG_LINE:
		buf_puts(b, "From: a@example.net\r\nSubject: long\r\n\r\nHi Bob,\r\n");
		for (int i = 0; i < 1200; i++)
			buf_putc(b, 'x');
		buf_puts(b, "\r\n");
		break;
	case O_NUL_HDR:
		buf_append(b, ORIG_NUL, sizeof(ORIG_NUL) - 1);
		break;
	case O_BIG_100K:
	case O_BIG_1M:
		buf_puts(b, ORIG_PLAIN);
		for (int i = 0; b->len < (o == O_BIG_1M ? 1024 * 1024 : 100 * 1024); i++)
			buf_printf(b, "line %07d: the quick brown fox jumps over the dog\r\n", i);
		buf_puts(b, "the last line\r\n");
		break;
	default:
		buf_puts(b, orig_text[o]);
		break;
	}
}

static int collect(void *arg, const void *data, size_t n)
{
	buf_append(arg, data, n);
	return 0;
}

/* Writes PREFIX and the original to a temporary file and composes the report into out. */
static int compose(const struct ndr_params *p, const struct ndr_rcpt *r, size_t n,
		   const struct buf *orig, ndr_write_fn *fn, void *arg)
{
	char path[] = "/tmp/test_ndr.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, PREFIX, strlen(PREFIX)), (ssize_t)strlen(PREFIX));
	assert_int_equal(write(fd, orig->data, orig->len), (ssize_t)orig->len);
	int rc = ndr_compose(p, r, n, fd, (off_t)strlen(PREFIX), orig->len, fn, arg);
	close(fd);
	return rc;
}

/* Every line ends in CRLF, no CR or LF stands alone, no line passes 998 octets. */
static void check_wire(const char *what, const struct buf *out)
{
	size_t line = 0;

	for (size_t i = 0; i < out->len; i++) {
		char c = out->data[i];
		if (c == '\r' && (i + 1 >= out->len || out->data[i + 1] != '\n'))
			fail_msg("%s: bare CR at %zu", what, i);
		if (c == '\n' && (i == 0 || out->data[i - 1] != '\r'))
			fail_msg("%s: bare LF at %zu", what, i);
		if (c == '\n')
			line = 0;
		else if (c != '\r' && ++line > 998)
			fail_msg("%s: line over 998 octets at %zu", what, i);
	}
	if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		fail_msg("%s: does not end in CRLF", what);
}

/* The text with folds and wrapped lines undone: a CRLF and the white space after it become
   one space (RFC 5322 2.2.3 for fields; the indent of the text part), or, with join,
   nothing (for a word cut at 998 octets). */
static void unfold(const struct buf *in, struct buf *out, bool join)
{
	for (size_t i = 0; i < in->len; i++) {
		size_t ws = i + 2 < in->len && in->data[i] == '\r' && in->data[i + 1] == '\n' ?
			strspn(in->data + i + 2, " \t") : 0;
		if (ws == 0) {
			buf_putc(out, in->data[i]);
			continue;
		}
		if (!join)
			buf_putc(out, ' ');
		i += 1 + ws;
	}
}

static bool has(const struct buf *b, const char *s)
{
	return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static void expect_has(const char *what, const struct buf *b, const char *const *want)
{
	for (; want != NULL && *want != NULL; want++)
		if (!has(b, *want))
			fail_msg("%s: missing \"%s\"", what, *want);
}

static void expect_lacks(const char *what, const struct buf *b, const char *const *unwanted)
{
	for (; unwanted != NULL && *unwanted != NULL; unwanted++)
		if (has(b, *unwanted))
			fail_msg("%s: has unwanted \"%s\"", what, *unwanted);
}

/* The directory of this source file, where ndr_check.py is. */
static void script_path(char *out, size_t len)
{
	const char *slash = strrchr(__FILE__, '/');
	int dirlen = slash != NULL ? (int)(slash - __FILE__) : 1;

	snprintf(out, len, "%.*s/ndr_check.py", dirlen, slash != NULL ? __FILE__ : ".");
}

/* Runs ndr_check.py on the report: third is the third part's type or "none", actions the
   recipients' actions separated by commas, text what the text part must say (or ""). */
static void python_check(const char *what, const struct buf *out, const char *third,
			 const char *actions, const char *text)
{
	char path[] = "/tmp/test_ndr_out.XXXXXX", script[4096], cmd[8192];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, out->data, out->len), (ssize_t)out->len);
	close(fd);
	script_path(script, sizeof(script));
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s' '%s' '%s' '%s'", script, path,
		 third, actions, text);
	int st = system(cmd);
	unlink(path);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("%s: ndr_check.py failed (status %d)", what, st);
}

/* The boundary the report declares, copied into out. */
static void boundary_of(const struct buf *report, char *out, size_t len)
{
	const char *b = strstr(buf_str(report), "boundary=\"");

	assert_non_null(b);
	b += strlen("boundary=\"");
	size_t n = strcspn(b, "\"");
	assert_true(n > 0 && n < len);
	memcpy(out, b, n);
	out[n] = '\0';
}

/* Recipient sets, each with the lines (unfolded) its report must carry. */
struct rcpt_set {
	const struct ndr_rcpt *r;
	size_t n;
	const char *const *want;
	const char *actions; /* as reported, one per recipient */
	const char *text;    /* in the text part as Python decodes it, or "" */
};

#define SET(name, actions, text) \
	{ name, sizeof(name) / sizeof(name[0]), name##_want, actions, text }
#define UTF8_ADDR "d\xc3\xb6rte@\xe4\xbe\x8b\xe3\x81\x88.jp" /* dörte@例え.jp */

static const struct ndr_rcpt fail1[] = {
	{ "bob@example.com", "rfc822;Bob+2Bx@Example.com", "failed", "5.1.1", 550,
	  "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
	  "mx.example.com", LAST_US, 0 },
};
static const char *const fail1_want[] = {
	"\r\nOriginal-Recipient: rfc822; Bob+x@Example.com\r\n"
	"Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	"Remote-MTA: dns; mx.example.com\r\n"
	"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: "
	"User unknown\r\nLast-Attempt-Date: Tue, 14 Nov 2023 21:56:40 +0000\r\n",
	"<bob@example.com>: host mx.example.com said: 550 5.1.1 <bob@example.com>: Recipient "
	"address rejected: User unknown\r\n",
	NULL
};

static const struct ndr_rcpt fail3[] = {
	{ "bob@example.com", "rfc822;Bob+2Bx@Example.com", "failed", "5.1.1", 550,
	  "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
	  "mx.example.com", LAST_US, 0 },
	{ "carol@example.org", NULL, "failed", "5.2.2", 0, "mailbox is full", NULL, LAST_US, 0 },
	{ UTF8_ADDR, "utf-8;d+C3+B6rte@+E4+BE+8B+E3+81+88.jp", "failed", "5.7.1", 554,
	  "transaction failed", "[192.0.2.7]", 0, 0 },
};
static const char *const fail3_want[] = {
	"\r\nFinal-Recipient: rfc822; carol@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n"
	"Diagnostic-Code: X-Postern; mailbox is full\r\n"
	"Last-Attempt-Date: Tue, 14 Nov 2023 21:56:40 +0000\r\n\r\n",
	"\r\nOriginal-Recipient: utf-8; d\\x{F6}rte@\\x{4F8B}\\x{3048}.jp\r\n"
	"Final-Recipient: utf-8; d\\x{F6}rte@\\x{4F8B}\\x{3048}.jp\r\nAction: failed\r\n"
	"Status: 5.7.1\r\nRemote-MTA: dns; [192.0.2.7]\r\n"
	"Diagnostic-Code: smtp; 554 transaction failed\r\n",
	"<carol@example.org>: mailbox is full\r\n",
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n",
	NULL
};

/* The UTF-8 address goes quoted-printable, so Python checks this line. */
#define FAIL3_TEXT "<" UTF8_ADDR ">: host [192.0.2.7] said: 554 transaction failed"

static const struct ndr_rcpt delay1[] = {
	{ "bob@example.com", NULL, "delayed", "4.4.1", 0, "connection timed out",
	  "mx.example.com", LAST_US, RETRY_US },
};
static const char *const delay1_want[] = {
	"\r\nFinal-Recipient: rfc822; bob@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
	"Remote-MTA: dns; mx.example.com\r\nDiagnostic-Code: X-Postern; connection timed out\r\n"
	"Last-Attempt-Date: Tue, 14 Nov 2023 21:56:40 +0000\r\n"
	"Will-Retry-Until: Fri, 17 Nov 2023 22:13:20 +0000\r\n",
	"<bob@example.com>: connection timed out (while talking to host mx.example.com) "
	"Delivery will be retried until Fri, 17 Nov 2023 22:13:20 +0000.\r\n",
	NULL
};

static const struct ndr_rcpt delay3[] = {
	{ "bob@example.com", NULL, "delayed", "4.4.1", 0, "connection timed out",
	  "mx.example.com", LAST_US, RETRY_US },
	{ "carol@example.org", "rfc822;carol@example.org", "delayed", "4.2.2", 452,
	  "452 4.2.2 Mailbox full", "mx2.example.org", LAST_US, RETRY_US },
	{ "dave@example.net", NULL, "delayed", "4.4.3", 0, "Host not found", NULL, 0, RETRY_US },
};
static const char *const delay3_want[] = {
	"\r\nOriginal-Recipient: rfc822; carol@example.org\r\n"
	"Final-Recipient: rfc822; carol@example.org\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
	"Remote-MTA: dns; mx2.example.org\r\nDiagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n",
	"\r\nFinal-Recipient: rfc822; dave@example.net\r\nAction: delayed\r\nStatus: 4.4.3\r\n"
	"Diagnostic-Code: X-Postern; Host not found\r\n"
	"Will-Retry-Until: Fri, 17 Nov 2023 22:13:20 +0000\r\n",
	NULL
};

static const struct ndr_rcpt success1[] = {
	{ "bob@example.com", "rfc822;bob@example.com", "delivered", "2.0.0", 250,
	  "250 2.0.0 Ok: queued as 4Xyz", "mx.example.com", LAST_US, 0 },
};
static const char *const success1_want[] = {
	"\r\nOriginal-Recipient: rfc822; bob@example.com\r\n"
	"Final-Recipient: rfc822; bob@example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
	"Remote-MTA: dns; mx.example.com\r\n"
	"Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4Xyz\r\n",
	NULL
};

static const struct ndr_rcpt success3[] = {
	{ "bob@example.com", NULL, "delivered", "2.0.0", 250, "250 2.0.0 Ok: queued as 4Xyz",
	  "mx.example.com", LAST_US, 0 },
	{ "carol@example.org", NULL, "delivered", "2.0.0", 0, NULL, NULL, LAST_US, 0 },
	{ "list@example.org", NULL, "relayed", "2.0.0", 0, NULL, "legacy.example.org", 0, 0 },
};
static const char *const success3_want[] = {
	"\r\nFinal-Recipient: rfc822; carol@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
	"Last-Attempt-Date: Tue, 14 Nov 2023 21:56:40 +0000\r\n\r\n",
	"\r\nFinal-Recipient: rfc822; list@example.org\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
	"Remote-MTA: dns; legacy.example.org\r\n",
	"<carol@example.org>: delivered\r\n",
	"<list@example.org>: passed on to a system that does not confirm delivery (while talking "
	"to host legacy.example.org)\r\n",
	NULL
};

/* A multi-line reply (RFC 3461 9.2), a status with a leading zero and an action the RFC
   does not know: the reply becomes one folded field, the others their generic values. */
static const struct ndr_rcpt odd1[] = {
	{ "bob@example.com", NULL, "bounced", "5.01.1", 550,
	  "550-mailbox unavailable\r\n550 user has moved with no forwarding address",
	  "mx.example.com", 0, RETRY_US },
};
static const char *const odd1_want[] = {
	"\r\nFinal-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.0.0\r\n"
	"Remote-MTA: dns; mx.example.com\r\nDiagnostic-Code: smtp; 550-mailbox unavailable 550 "
	"user has moved with no forwarding address\r\n\r\n",
	NULL
};

#define FAIL1 SET(fail1, "failed", "")
#define FAIL3 SET(fail3, "failed,failed,failed", FAIL3_TEXT)
#define DELAY1 SET(delay1, "delayed", "")
#define DELAY3 SET(delay3, "delayed,delayed,delayed", "")
#define SUCCESS1 SET(success1, "delivered", "")
#define SUCCESS3 SET(success3, "delivered,delivered,relayed", "")
#define ODD1 SET(odd1, "failed", "")

/* One report to compose and check. */
struct report_case {
	const char *name;
	enum ndr_kind kind;
	struct rcpt_set set;
	const char *ret;
	const char *envid;
	enum orig orig;
	const char *third;  /* type of the returned part, or "none" */
	bool part_8bit;     /* that part is labelled 8bit */
	const char *const *want;
	const char *const *unwanted;
};

static const char *const no_extras[] = { "Will-Retry-Until", "Original-Envelope-Id",
					 "Content-Transfer-Encoding: 8bit", NULL };
static const char *const no_body[] = { "Hi Bob", "Will-Retry-Until",
				       "Content-Transfer-Encoding: 8bit", NULL };
static const char *const full_attached[] = { "Your message is attached.", NULL };
static const char *const hdr_attached[] = {
	"The header of your message is attached.", "Message-ID: <m1@example.net>\r\n\r\n--", NULL
};
static const char *const envid_hdrs[] = {
	"Original-Envelope-Id: QQ+314159\r\nReporting-MTA: dns; mta.example.org\r\n",
	"The header of your message is attached.", NULL
};
static const char *const envid_bad[] = { "Original-Envelope-Id: A+0DB\r\n", NULL };
static const char *const big_tail[] = { "the last line\r\n\r\n--", NULL };
static const char *const no_tail[] = { "the last line", "line 0001000", NULL };
static const char *const top_8bit[] = {
	"Content-Transfer-Encoding: 8bit\r\n\r\nThis is a delivery status notification", NULL
};
static const char *const no_8bit[] = { "Content-Transfer-Encoding: 8bit", NULL };
static const char *const nosep_hdrs[] = { "Subject: no body\r\n\r\n--", NULL };
static const char *const nothing_attached[] = { "attached", "Content-Description: Returned",
						NULL };
static const char *const lf_full[] = { "Subject: lf\r\n\r\nHi Bob,\r\nline two\r\n\r\n--", NULL };
static const char *const long_hdrs[] = { "Subject: long\r\n\r\n--", NULL };
static const char *const no_long[] = { "xxxxxxxxxx", NULL };

/* name, kind, recipients, RET, ENVID, original, returned part, 8bit, wanted, unwanted */
static const struct report_case report_cases[] = {
	{ "failure, 1 rcpt, RET=FULL", NDR_FAILURE, FAIL1, "FULL", NULL, O_PLAIN,
	  "message/rfc822", false, full_attached, no_extras },
	{ "failure, 3 rcpts, RET=HDRS, ENVID", NDR_FAILURE, FAIL3, "HDRS", "QQ+2B314159", O_PLAIN,
	  "text/rfc822-headers", false, envid_hdrs, no_body },
	{ "failure, RET absent, small", NDR_FAILURE, FAIL1, NULL, NULL, O_PLAIN,
	  "message/rfc822", false, full_attached, no_extras },
	{ "failure, RET absent, 100 KiB", NDR_FAILURE, FAIL1, NULL, NULL, O_BIG_100K,
	  "text/rfc822-headers", false, hdr_attached, no_tail },
	{ "failure, 3 rcpts, RET=full, 1 MiB", NDR_FAILURE, FAIL3, "full", NULL, O_BIG_1M,
	  "message/rfc822", false, big_tail, NULL },
	{ "delay, 1 rcpt, RET=FULL", NDR_DELAY, DELAY1, "FULL", NULL, O_PLAIN,
	  "text/rfc822-headers", false, hdr_attached, no_8bit },
	{ "delay, 3 rcpts", NDR_DELAY, DELAY3, NULL, NULL, O_PLAIN,
	  "text/rfc822-headers", false, hdr_attached, no_8bit },
	{ "success, 1 rcpt", NDR_SUCCESS, SUCCESS1, NULL, NULL, O_PLAIN,
	  "text/rfc822-headers", false, hdr_attached, no_body },
	{ "success, 3 rcpts, RET=FULL", NDR_SUCCESS, SUCCESS3, "FULL", NULL, O_PLAIN,
	  "text/rfc822-headers", false, hdr_attached, no_body },
	{ "8-bit body, RET=FULL", NDR_FAILURE, FAIL1, "FULL", NULL, O_8BIT_BODY,
	  "message/rfc822", true, top_8bit, NULL },
	{ "8-bit body, RET=HDRS", NDR_FAILURE, FAIL1, "HDRS", NULL, O_8BIT_BODY,
	  "text/rfc822-headers", false, NULL, no_8bit },
	{ "UTF-8 header, RET=FULL", NDR_FAILURE, FAIL1, "FULL", NULL, O_8BIT_HDR,
	  "message/global", true, top_8bit, NULL },
	{ "UTF-8 header, RET=HDRS", NDR_FAILURE, FAIL1, "HDRS", NULL, O_8BIT_HDR,
	  "message/global-headers", true, top_8bit, NULL },
	{ "no separator, RET=FULL", NDR_FAILURE, FAIL1, "FULL", NULL, O_NOSEP,
	  "message/rfc822", false, full_attached, NULL },
	{ "no separator, RET=HDRS", NDR_FAILURE, FAIL1, "HDRS", NULL, O_NOSEP,
	  "text/rfc822-headers", false, nosep_hdrs, NULL },
	{ "empty original", NDR_FAILURE, FAIL1, "FULL", NULL, O_EMPTY,
	  "none", false, NULL, nothing_attached },
	{ "bare LF line ends", NDR_FAILURE, FAIL1, "FULL", NULL, O_BARE_LF,
	  "message/rfc822", false, lf_full, NULL },
	{ "over-long body line", NDR_FAILURE, FAIL1, "FULL", NULL, O_LONG_LINE,
	  "text/rfc822-headers", false, long_hdrs, no_long },
	{ "NUL in the header", NDR_FAILURE, FAIL1, "FULL", NULL, O_NUL_HDR,
	  "none", false, NULL, nothing_attached },
	{ "no header, RET=HDRS", NDR_FAILURE, FAIL1, "HDRS", NULL, O_NO_HDR,
	  "none", false, NULL, nothing_attached },
	{ "no header, RET=FULL", NDR_FAILURE, FAIL1, "FULL", NULL, O_NO_HDR,
	  "message/rfc822", false, full_attached, NULL },
	{ "odd action, status, reply, ENVID", NDR_FAILURE, ODD1, "FULL", "A+0DB", O_PLAIN,
	  "message/rfc822", false, envid_bad, NULL },
};

static struct ndr_params params_for(enum ndr_kind kind, const char *ret, const char *envid)
{
	return (struct ndr_params){ .kind = kind, .reporting_mta = HOST, .queue_id = "4Xyz0Abc1",
				    .envid = envid, .arrival_us = ARRIVAL_US,
				    .to = "alice@example.net", .ret = ret, .now_us = NOW_US,
				    .message_id = "ndr.1@" HOST };
}

/* The report's own header, the same for every case but the subject. */
static void check_top(const char *what, const struct buf *out, enum ndr_kind kind)
{
	static const char *const subject[] = {
		[NDR_FAILURE] = "\r\nSubject: Undelivered Mail Returned to Sender\r\n",
		[NDR_DELAY] = "\r\nSubject: Delayed Mail (still being retried)\r\n",
		[NDR_SUCCESS] = "\r\nSubject: Successful Mail Delivery Report\r\n",
	};
	const char *const want[] = {
		"From: Mail Delivery System <MAILER-DAEMON@" HOST ">\r\n",
		"\r\nTo: <alice@example.net>\r\n", subject[kind],
		"\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
		"\r\nMessage-ID: <ndr.1@" HOST ">\r\n", "\r\nAuto-Submitted: auto-replied\r\n",
		"\r\nMIME-Version: 1.0\r\n",
		"\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"",
		"\r\nContent-Type: message/delivery-status\r\n",
		"\r\nReporting-MTA: dns; " HOST "\r\n"
		"Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n\r\n",
		NULL
	};

	assert_memory_equal(out->data, want[0], strlen(want[0]));
	expect_has(what, out, want);
}

/* The original as the report must carry it: line ends as CRLF, and only the header (up to
   its empty line) unless full. */
static void included(const struct buf *orig, bool full, struct buf *out)
{
	for (size_t i = 0; i < orig->len; i++) {
		char c = orig->data[i];
		if (c == '\r' || c == '\n')
			buf_puts(out, "\r\n");
		else
			buf_putc(out, c);
		if (c == '\r' && i + 1 < orig->len && orig->data[i + 1] == '\n')
			i++;
	}
	const char *end = strstr(buf_str(out), "\r\n\r\n");
	if (!full && end != NULL) {
		out->len = (size_t)(end - out->data) + 2;
		out->data[out->len] = '\0';
	}
}

/* The third part's type, encoding and content. */
static void check_returned(const struct report_case *c, const struct buf *out,
			   const struct buf *orig)
{
	struct buf type = { 0 }, want = { 0 };

	if (strcmp(c->third, "none") == 0) {
		assert_false(has(out, "Content-Description: Returned"));
		return;
	}
	buf_printf(&type, "\r\nContent-Type: %s\r\nContent-Description: Returned %s\r\n%s\r\n",
		   c->third, strstr(c->third, "headers") ? "header" : "message",
		   c->part_8bit ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	if (!has(out, buf_str(&type)))
		fail_msg("%s: no part header \"%s\"", c->name, buf_str(&type));
	included(orig, strstr(c->third, "headers") == NULL, &want);
	buf_puts(&want, "\r\n--");
	if (!has(out, buf_str(&want)))
		fail_msg("%s: the returned content is not as expected", c->name);
	buf_free(&type);
	buf_free(&want);
}

static void test_reports(void **state)
{
	for (size_t i = 0; i < sizeof(report_cases) / sizeof(report_cases[0]); i++) {
		const struct report_case *c = &report_cases[i];
		struct ndr_params p = params_for(c->kind, c->ret, c->envid);
		struct buf orig = { 0 }, out = { 0 }, flat = { 0 };
		orig_make(c->orig, &orig);
		if (compose(&p, c->set.r, c->set.n, &orig, collect, &out) != 0)
			fail_msg("%s: ndr_compose failed", c->name);
		check_wire(c->name, &out);
		check_top(c->name, &out, c->kind);
		unfold(&out, &flat, false);
		expect_has(c->name, &flat, c->set.want);
		expect_has(c->name, &flat, c->want);
		expect_lacks(c->name, &flat, c->unwanted);
		check_returned(c, &out, &orig);
		python_check(c->name, &out, c->third, c->set.actions, c->set.text);
		buf_free(&orig);
		buf_free(&out);
		buf_free(&flat);
	}
}

/* The boundary is not found in the report's content: an original holding the first
   candidate (as a delimiter line and in a header), or a reply quoting it, makes
   ndr_compose pick another. */
static void test_boundary_clash(void **state)
{
	struct ndr_params p = params_for(NDR_FAILURE, "FULL", NULL);
	struct buf orig = { 0 }, out = { 0 };
	char first[128], second[128];
	struct ndr_rcpt quoting = fail1[0];

	orig_make(O_PLAIN, &orig);
	assert_int_equal(compose(&p, fail1, 1, &orig, collect, &out), 0);
	boundary_of(&out, first, sizeof(first));
	for (int round = 0; round < 2; round++) {
		buf_reset(&orig);
		buf_reset(&out);
		buf_printf(&orig, "From: a@example.net\r\nX-Trap: %s\r\n\r\n", round ? "" : first);
		buf_printf(&orig, "Hi Bob,\r\n--%s\r\nContent-Type: text/plain\r\n\r\nfake\r\n"
			   "--%s--\r\n", round ? "x" : first, round ? "x" : first);
		quoting.diagnostic = round ? first : fail1[0].diagnostic;
		assert_int_equal(compose(&p, &quoting, 1, &orig, collect, &out), 0);
		boundary_of(&out, second, sizeof(second));
		assert_string_not_equal(first, second);
		assert_null(memmem(orig.data, orig.len, second, strlen(second)));
		check_wire("boundary clash", &out);
		python_check("boundary clash", &out, "message/rfc822", "failed", "");
	}
	buf_free(&orig);
	buf_free(&out);
}

/* A 2 KB diagnostic, with spaces and without: folded or cut, never a line over 998
   octets, and the text comes back whole when the folds are undone. */
static void test_long_diagnostic(void **state)
{
	struct ndr_params p = params_for(NDR_FAILURE, "HDRS", NULL);
	struct buf orig = { 0 };

	orig_make(O_PLAIN, &orig);
	for (int spaced = 0; spaced < 2; spaced++) {
		struct buf text = { 0 }, out = { 0 }, flat = { 0 }, want = { 0 };
		struct ndr_rcpt r = fail1[0];
		for (int i = 0; text.len < 2048; i++)
			buf_printf(&text, spaced ? "word%03d " : "w%03d", i % 1000);
		buf_puts(&text, "end");
		r.diagnostic = buf_str(&text);
		r.code = spaced ? 550 : 0;
		assert_int_equal(compose(&p, &r, 1, &orig, collect, &out), 0);
		check_wire(spaced ? "long spaced diagnostic" : "long solid diagnostic", &out);
		unfold(&out, &flat, !spaced);
		/* joining also closes the fold after "X-Postern;" */
		buf_printf(&want, "\r\nDiagnostic-Code: %s%s\r\n", spaced ? "smtp; 550 " :
			   "X-Postern;", buf_str(&text));
		assert_true(has(&flat, buf_str(&want)));
		python_check("long diagnostic", &out, "text/rfc822-headers", "failed",
			     spaced ? buf_str(&text) : "");
		buf_free(&text);
		buf_free(&out);
		buf_free(&flat);
		buf_free(&want);
	}
	buf_free(&orig);
}

/* Fails the write numbered fail_at (from 0) and counts writes after it. */
struct failing {
	int calls, fail_at, after;
};

static int failing_write(void *arg, const void *data, size_t n)
{
	struct failing *f = arg;

	if (f->calls > f->fail_at)
		f->after++;
	return f->calls++ == f->fail_at ? -1 : 0;
}

/* Whichever write fails, the header, a chunk of the original or the end, ndr_compose stops
   there and returns -1. */
static void test_write_failure(void **state)
{
	struct ndr_params p = params_for(NDR_FAILURE, "FULL", NULL);
	struct buf orig = { 0 };
	struct failing count = { 0, -1, 0 };

	orig_make(O_BIG_1M, &orig);
	assert_int_equal(compose(&p, fail1, 1, &orig, failing_write, &count), 0);
	assert_true(count.calls > 3); /* the original went in several chunks */
	for (int k = 0; k < count.calls; k++) {
		struct failing f = { 0, k, 0 };
		assert_int_equal(compose(&p, fail1, 1, &orig, failing_write, &f), -1);
		assert_int_equal(f.calls, k + 1);
		assert_int_equal(f.after, 0);
	}
	buf_free(&orig);
}

/* A file shorter than content_size, or no file: -1, and nothing half-written is
   mistaken for success. */
static void test_read_failure(void **state)
{
	struct ndr_params p = params_for(NDR_FAILURE, "FULL", NULL);
	struct buf out = { 0 };
	char path[] = "/tmp/test_ndr.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, ORIG_PLAIN, strlen(ORIG_PLAIN)), (ssize_t)strlen(ORIG_PLAIN));
	assert_int_equal(ndr_compose(&p, fail1, 1, fd, 0, strlen(ORIG_PLAIN) + 100, collect, &out),
			 -1);
	assert_int_equal(ndr_compose(&p, fail1, 1, fd, 10, strlen(ORIG_PLAIN), collect, &out), -1);
	close(fd);
	assert_int_equal(ndr_compose(&p, fail1, 1, -1, 0, 10, collect, &out), -1);
	buf_free(&out);
}

/* Missing arguments are refused before anything is written. */
static void test_bad_args(void **state)
{
	struct ndr_params p = params_for(NDR_FAILURE, NULL, NULL);
	struct ndr_rcpt r = fail1[0];
	struct failing f = { 0, -1, 0 };

	assert_int_equal(ndr_compose(&p, fail1, 0, -1, 0, 0, failing_write, &f), -1);
	p.to = "";
	assert_int_equal(ndr_compose(&p, fail1, 1, -1, 0, 0, failing_write, &f), -1);
	p.to = NULL;
	assert_int_equal(ndr_compose(&p, fail1, 1, -1, 0, 0, failing_write, &f), -1);
	p = params_for(NDR_FAILURE, NULL, NULL);
	p.reporting_mta = "";
	assert_int_equal(ndr_compose(&p, fail1, 1, -1, 0, 0, failing_write, &f), -1);
	p = params_for(NDR_FAILURE, NULL, NULL);
	r.address = "";
	assert_int_equal(ndr_compose(&p, &r, 1, -1, 0, 0, failing_write, &f), -1);
	assert_int_equal(ndr_compose(NULL, fail1, 1, -1, 0, 0, failing_write, &f), -1);
	assert_int_equal(f.calls, 0);
	/* an empty original needs no file at all */
	assert_int_equal(ndr_compose(&p, fail1, 1, -1, 0, 0, failing_write, &f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reports),
		cmocka_unit_test(test_boundary_clash),
		cmocka_unit_test(test_long_diagnostic),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_read_failure),
		cmocka_unit_test(test_bad_args),
	};

	/* the expected dates are in UTC */
	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
