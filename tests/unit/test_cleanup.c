#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/cleanup.h"
#include "queue/qfile.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"

/* cleanup over a real queue file: lines go in, the content is read back with qfile_load and
   compared byte for byte. In expected content "{ID}" stands for the queue ID and "{DATE}" for
   an RFC 5322 date, which must be within a few minutes of now. */

#define HOST "mx.example"
#define LIMIT 102400

/* ---- fixture and runner ---- */

struct fx {
	char dir[64];
	struct spool *spool;
	regex_t date_re;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *error = NULL;
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/postern-test-cleanup-XXXXXX");
	if (mkdtemp(fx->dir) == NULL || spool_open(fx->dir, &fx->spool, &error) < 0)
		return -1;
	if (regcomp(&fx->date_re,
		    "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} "
		    "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
		    "[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
		    REG_EXTENDED) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	spool_free(&fx->spool);
	regfree(&fx->date_re);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

struct run {
	char id[QUEUE_ID_LEN + 1];
	enum cleanup_status line_status; /* the last cleanup_line result */
	size_t first_bad;                /* index of the first line answered with an error */
	enum cleanup_status status;      /* cleanup_finish */
	char *content;                   /* read back; NULL when the file is not finished */
	size_t len;
};

/* Runs cleanup with params p (id filled in) over n lines (lens NULL: strlen). When dev_full is
   set, the queue file's descriptor is pointed at /dev/full after the envelope is written. */
static void run_cleanup(const struct fx *fx, const struct cleanup_params *params,
			const char *const *lines, const size_t *lens, size_t n, bool dev_full,
			struct run *r)
{
	struct queue_envelope env;
	struct qfile *qf = NULL;
	struct cleanup_params p = *params;
	memset(r, 0, sizeof(*r));
	memset(&env, 0, sizeof(env));
	queue_id_new(env.id);
	memcpy(r->id, env.id, sizeof(r->id));
	queue_envelope_set(&env.sender, p.sender);
	queue_envelope_add_rcpt(&env, "r@example.net", 0, NULL);
	assert_int_equal(qfile_create(fx->spool, &env, &qf), 0);
	if (dev_full) {
		int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
		assert_true(full >= 0);
		assert_int_equal(dup2(full, qfile_fd(qf)), qfile_fd(qf));
		close(full);
	}
	p.id = env.id;
	struct cleanup *c = cleanup_new(&p, qf);
	assert_non_null(c);
	r->first_bad = SIZE_MAX;
	r->line_status = CLEANUP_OK;
	for (size_t i = 0; i < n; i++) {
		enum cleanup_status st = cleanup_line(c, lines[i], lens ? lens[i] : strlen(lines[i]));
		if (r->line_status != CLEANUP_OK && st != r->line_status)
			fail_msg("line %zu: status changed from %d to %d", i, r->line_status, st);
		if (st != CLEANUP_OK && r->first_bad == SIZE_MAX)
			r->first_bad = i;
		r->line_status = st;
	}
	r->status = cleanup_finish(c);
	if (r->line_status != CLEANUP_OK)
		assert_int_equal(r->status, r->line_status);
	cleanup_free(&c);
	assert_null(c);
	cleanup_free(&c);
	if (r->status == CLEANUP_OK) {
		off_t off;
		uint64_t size;
		const char *why = NULL;
		struct queue_envelope got;
		if (qfile_load(qfile_path(qf), &got, &off, &size, &why) != 0)
			fail_msg("cleanup output does not load: %s", why);
		assert_string_equal(got.id, env.id);
		queue_envelope_clear(&got);
		assert_int_equal(size, qfile_content_size(qf));
		r->content = malloc(size + 1);
		assert_non_null(r->content);
		int fd = open(qfile_path(qf), O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, r->content, size, off), (ssize_t)size);
		close(fd);
		r->content[size] = '\0';
		r->len = size;
	}
	qfile_abort(&qf);
	queue_envelope_clear(&env);
}

/* Replaces each date in s with "{DATE}" after checking it is close to now. */
static char *normalise_dates(const struct fx *fx, const char *s)
{
	struct buf b = { 0 };
	regmatch_t m;
	time_t now = time(NULL);
	while (regexec(&fx->date_re, s, 1, &m, 0) == 0) {
		char date[64];
		struct tm tm;
		size_t dl = (size_t)(m.rm_eo - m.rm_so);
		assert_true(dl < sizeof(date));
		memcpy(date, s + m.rm_so, dl);
		date[dl] = '\0';
		memset(&tm, 0, sizeof(tm));
		const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S %z", &tm);
		if (end == NULL || *end != '\0')
			fail_msg("date \"%s\" does not parse", date);
		time_t t = timegm(&tm) - tm.tm_gmtoff;
		if (t < now - 300 || t > now + 300)
			fail_msg("date \"%s\" is not now", date);
		buf_append(&b, s, (size_t)m.rm_so);
		buf_puts(&b, "{DATE}");
		s += m.rm_eo;
	}
	buf_puts(&b, s);
	return b.data != NULL ? b.data : strdup("");
}

static char *substitute_id(const char *want, const char *id)
{
	struct buf b = { 0 };
	const char *p;
	while ((p = strstr(want, "{ID}")) != NULL) {
		buf_append(&b, want, (size_t)(p - want));
		buf_puts(&b, id);
		want = p + 4;
	}
	buf_puts(&b, want);
	return b.data != NULL ? b.data : strdup("");
}

/* Shows CR, LF and other control bytes so that a failing comparison is readable. */
static void visible(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r')
			o += (size_t)snprintf(out + o, outlen - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(out + o, outlen - o, "\\n\n");
		else if (c == '\t')
			o += (size_t)snprintf(out + o, outlen - o, "\\t");
		else if (c < 32 || c >= 127)
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}

/* Compares run output with want (after {ID}/{DATE} handling); returns 0 when equal. */
static int compare_content(const struct fx *fx, const char *name, const struct run *r, const char *want)
{
	if (want == NULL)
		return r->content == NULL ? 0 : (print_error("%s: content written\n", name), 1);
	if (r->content == NULL) {
		print_error("%s: no content (status %d)\n", name, r->status);
		return 1;
	}
	char *w = substitute_id(want, r->id);
	char *got = normalise_dates(fx, r->content);
	int bad = strlen(got) != strlen(w) || strcmp(got, w) != 0 || strlen(r->content) != r->len;
	if (bad) {
		static char a[65536], b[65536];
		visible(got, strlen(got), a, sizeof(a));
		visible(w, strlen(w), b, sizeof(b));
		print_error("%s: content\n%s\n--- expected\n%s\n---\n", name, a, b);
	}
	free(w);
	free(got);
	return bad;
}

/* ---- the table ---- */

#define RCV_SMTP                                                                   \
	"Received: from helo.example (client.example.net [192.0.2.1])\r\n\tby " HOST \
	" (postern)\r\n\twith ESMTP id {ID}; {DATE}\r\n"
#define RCV_LOCAL "Received: by " HOST " (postern)\r\n\twith local id {ID}; {DATE}\r\n"
#define DATE_ID "Date: {DATE}\r\nMessage-ID: <{ID}.postern@" HOST ">\r\n"
#define ADDED "From: <u@example.org>\r\n" DATE_ID

#define PSMTP                                                                         \
	{ .hostname = HOST, .client_addr = "192.0.2.1", .client_name = "client.example.net", \
	  .helo = "helo.example", .proto = "ESMTP", .sender = "s@example.org",               \
	  .header_size_limit = LIMIT }
#define PLOCAL_NAMED(sender_, name_)                                                  \
	{ .hostname = HOST, .proto = "local", .sender = sender_, .full_name = name_, \
	  .local = true, .header_size_limit = LIMIT }
#define PLOCAL PLOCAL_NAMED("u@example.org", NULL)

struct ccase {
	const char *name;
	struct cleanup_params p;
	const char *lines[16]; /* NULL-terminated */
	enum cleanup_status status;
	const char *want; /* NULL: nothing readable (an error) */
};

#define L(...) { __VA_ARGS__, NULL }
#define NOLINES { NULL }

static const struct ccase cases[] = {
	/* the Received header */
	{ "smtp", PSMTP, L("Subject: hi", "", "body"), CLEANUP_OK,
	  RCV_SMTP "Subject: hi\r\n\r\nbody\r\n" },
	{ "smtp without helo or reverse name",
	  { .hostname = HOST, .client_addr = "2001:db8::1", .proto = "ESMTP", .sender = "",
	    .header_size_limit = LIMIT },
	  L("Subject: hi", "", "body"), CLEANUP_OK,
	  "Received: from unknown (unknown [2001:db8::1])\r\n\tby " HOST
	  " (postern)\r\n\twith ESMTP id {ID}; {DATE}\r\nSubject: hi\r\n\r\nbody\r\n" },
	{ "smtp with tls and one recipient",
	  { .hostname = HOST, .client_addr = "192.0.2.1", .client_name = "client.example.net",
	    .helo = "helo.example", .proto = "ESMTPS", .tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
	    .sender = "s@example.org", .for_rcpt = "r@example.net", .header_size_limit = LIMIT },
	  L("Subject: hi", "", "body"), CLEANUP_OK,
	  "Received: from helo.example (client.example.net [192.0.2.1])\r\n\tby " HOST
	  " (postern)\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\twith ESMTPS id "
	  "{ID}\r\n\tfor <r@example.net>; {DATE}\r\nSubject: hi\r\n\r\nbody\r\n" },
	{ "lmtp, one recipient, no tls",
	  { .hostname = HOST, .client_addr = "127.0.0.1", .helo = "lhlo.example", .proto = "LMTP",
	    .sender = "s@example.org", .for_rcpt = "r@example.net", .header_size_limit = LIMIT },
	  L("Subject: hi", "", "body"), CLEANUP_OK,
	  "Received: from lhlo.example (unknown [127.0.0.1])\r\n\tby " HOST
	  " (postern)\r\n\twith LMTP id {ID}\r\n\tfor <r@example.net>; {DATE}\r\nSubject: hi\r\n\r\n"
	  "body\r\n" },
	{ "local", PLOCAL, L("Subject: hi", "From: a@b", "Date: x", "Message-ID: <m@b>", "", "body"),
	  CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\nFrom: a@b\r\nDate: x\r\nMessage-ID: <m@b>\r\n\r\nbody\r\n" },

	/* Return-Path is dropped in any case, with its continuation lines, and only in the header */
	{ "return-path", PSMTP,
	  L("Return-Path: <x@y>", "Subject: s", "return-path: <z@y>", "\tcontinued", " again",
	    "RETURN-PATH:<a@b>", "X-Return-Path: kept", "Return-Path-X: kept", " cont kept",
	    "Return-Pat: kept", "", "Return-Path: <in@body>"),
	  CLEANUP_OK,
	  RCV_SMTP "Subject: s\r\nX-Return-Path: kept\r\nReturn-Path-X: kept\r\n cont kept\r\n"
	  "Return-Pat: kept\r\n\r\nReturn-Path: <in@body>\r\n" },
	{ "return-path only", PSMTP, L("Return-Path: <x@y>"), CLEANUP_OK, RCV_SMTP "\r\n" },
	{ "return-path with empty value", PSMTP, L("Return-Path:", " <x@y>", "Subject: s"),
	  CLEANUP_OK, RCV_SMTP "Subject: s\r\n\r\n" },

	/* local submissions: From, Date and Message-ID when missing, at the end of the header */
	{ "local, nothing present", PLOCAL, L("Subject: hi", "", "body"), CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\n" ADDED "\r\nbody\r\n" },
	{ "local, full name", PLOCAL_NAMED("u@example.org", "John Doe"), L("Subject: hi", "", "b"),
	  CLEANUP_OK, RCV_LOCAL "Subject: hi\r\nFrom: John Doe <u@example.org>\r\n" DATE_ID "\r\nb\r\n" },
	{ "local, full name with a comma", PLOCAL_NAMED("u@example.org", "Doe, John"),
	  L("Subject: hi", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\nFrom: \"Doe, John\" <u@example.org>\r\n" DATE_ID "\r\nb\r\n" },
	{ "local, full name with quotes and backslash",
	  PLOCAL_NAMED("u@example.org", "J. \"Q\" \\ D"), L("Subject: hi", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\nFrom: \"J. \\\"Q\\\" \\\\ D\" <u@example.org>\r\n" DATE_ID
	  "\r\nb\r\n" },
	{ "local, full name of specials", PLOCAL_NAMED("u@example.org", "<a@b>"),
	  L("Subject: hi", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\nFrom: \"<a@b>\" <u@example.org>\r\n" DATE_ID "\r\nb\r\n" },
	{ "local, empty full name", PLOCAL_NAMED("u@example.org", ""), L("Subject: hi", "", "b"),
	  CLEANUP_OK, RCV_LOCAL "Subject: hi\r\n" ADDED "\r\nb\r\n" },
	{ "local, null sender", PLOCAL_NAMED("", NULL), L("Subject: hi", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Subject: hi\r\nFrom: <MAILER-DAEMON>\r\n" DATE_ID "\r\nb\r\n" },
	{ "local, present in other cases", PLOCAL,
	  L("fROM: a@b", "DATE: x", "message-id: <m@b>", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "fROM: a@b\r\nDATE: x\r\nmessage-id: <m@b>\r\n\r\nb\r\n" },
	{ "local, only From present", PLOCAL, L("From: a@b", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "From: a@b\r\n" DATE_ID "\r\nb\r\n" },
	{ "local, only Date present", PLOCAL, L("Date:x", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Date:x\r\nFrom: <u@example.org>\r\nMessage-ID: <{ID}.postern@" HOST ">\r\n\r\nb\r\n" },
	{ "local, only Message-Id present", PLOCAL, L("Message-Id:<m@b>", "", "b"), CLEANUP_OK,
	  RCV_LOCAL "Message-Id:<m@b>\r\nFrom: <u@example.org>\r\nDate: {DATE}\r\n\r\nb\r\n" },
	{ "local, lookalike names do not count", PLOCAL,
	  L("Resent-From: a@b", "From-X: y", "X-Date: z", "Message-IDs: w", "Fro: v", "Dat: u",
	    "Message-I: t", "", "b"),
	  CLEANUP_OK,
	  RCV_LOCAL "Resent-From: a@b\r\nFrom-X: y\r\nX-Date: z\r\nMessage-IDs: w\r\nFro: v\r\n"
	  "Dat: u\r\nMessage-I: t\r\n" ADDED "\r\nb\r\n" },
	{ "local, names in continuations and body do not count", PLOCAL,
	  L("Subject: a", " From: x", "\tDate: y", "", "Message-ID: <z>"), CLEANUP_OK,
	  RCV_LOCAL "Subject: a\r\n From: x\r\n\tDate: y\r\n" ADDED "\r\nMessage-ID: <z>\r\n" },
	{ "local, dropped Return-Path", PLOCAL, L("Return-Path: <x>", "", "b"), CLEANUP_OK,
	  RCV_LOCAL ADDED "\r\nb\r\n" },
	{ "smtp never adds", PSMTP, L("Subject: hi", "", "body"), CLEANUP_OK,
	  RCV_SMTP "Subject: hi\r\n\r\nbody\r\n" },

	/* the header/body separator */
	{ "no separator", PSMTP, L("Subject: a", "Body line without colon", "more"), CLEANUP_OK,
	  RCV_SMTP "Subject: a\r\n\r\nBody line without colon\r\nmore\r\n" },
	{ "no separator, local", PLOCAL, L("Subject: a", "Body line"), CLEANUP_OK,
	  RCV_LOCAL "Subject: a\r\n" ADDED "\r\nBody line\r\n" },
	{ "first line not a header", PSMTP, L("hello world", "Subject: x", "", "z"), CLEANUP_OK,
	  RCV_SMTP "\r\nhello world\r\nSubject: x\r\n\r\nz\r\n" },
	{ "first line not a header, local", PLOCAL, L("hello world"), CLEANUP_OK,
	  RCV_LOCAL ADDED "\r\nhello world\r\n" },
	{ "continuation as the first line", PSMTP, L(" indented", "Subject: x"), CLEANUP_OK,
	  RCV_SMTP "\r\n indented\r\nSubject: x\r\n" },
	{ "tab continuation as the first line", PSMTP, L("\tindented"), CLEANUP_OK,
	  RCV_SMTP "\r\n\tindented\r\n" },
	{ "blank line first", PSMTP, L("", "Subject: x"), CLEANUP_OK, RCV_SMTP "\r\nSubject: x\r\n" },
	{ "blank line first, local", PLOCAL, L("", "b"), CLEANUP_OK, RCV_LOCAL ADDED "\r\nb\r\n" },
	{ "empty message", PSMTP, NOLINES, CLEANUP_OK, RCV_SMTP "\r\n" },
	{ "empty message, local", PLOCAL, NOLINES, CLEANUP_OK, RCV_LOCAL ADDED "\r\n" },
	{ "header only", PSMTP, L("Subject: x", " folded"), CLEANUP_OK,
	  RCV_SMTP "Subject: x\r\n folded\r\n\r\n" },
	{ "header only, local", PLOCAL, L("Subject: x"), CLEANUP_OK,
	  RCV_LOCAL "Subject: x\r\n" ADDED "\r\n" },
	{ "blank lines in the body stay", PSMTP, L("A: b", "", "", "x", "", ""), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\n\r\nx\r\n\r\n\r\n" },
	{ "dot lines are content", PSMTP, L("A: b", "", ".", "..", ". x"), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\n.\r\n..\r\n. x\r\n" },

	/* raw: the content unaltered */
	{ "raw", { .hostname = HOST, .proto = "local", .sender = "u@example.org", .raw = true,
		   .local = true, .header_size_limit = 1 },
	  L("Return-Path: <x>", " cont", "no header here", "", "From x", "Date: y"), CLEANUP_OK,
	  "Return-Path: <x>\r\n cont\r\nno header here\r\n\r\nFrom x\r\nDate: y\r\n" },
	{ "raw empty", { .hostname = HOST, .proto = "ESMTP", .sender = "", .raw = true,
			 .header_size_limit = 0 },
	  NOLINES, CLEANUP_OK, "" },
	{ "raw blank", { .hostname = HOST, .proto = "ESMTP", .sender = "", .raw = true },
	  L(""), CLEANUP_OK, "\r\n" },

	/* hostile header lines end the header: the blank line goes in before them */
	{ "field name with a space", PSMTP, L("Subject: a", "Bad Name: x", "C: d"), CLEANUP_OK,
	  RCV_SMTP "Subject: a\r\n\r\nBad Name: x\r\nC: d\r\n" },
	{ "space before the colon", PSMTP, L("Subject : a"), CLEANUP_OK,
	  RCV_SMTP "\r\nSubject : a\r\n" },
	{ "control character in a field name", PSMTP, L("A: b", "X\x01Y: v"), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\nX\x01Y: v\r\n" },
	{ "DEL in a field name", PSMTP, L("A: b", "\x7fX: v"), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\n\x7fX: v\r\n" },
	{ "8-bit field name", PSMTP, L("A: b", "X\x80: v"), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\nX\x80: v\r\n" },
	{ "empty field name", PSMTP, L("A: b", ": v"), CLEANUP_OK, RCV_SMTP "A: b\r\n\r\n: v\r\n" },
	{ "no colon", PSMTP, L("A: b", "NoColonHere"), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\r\nNoColonHere\r\n" },
	{ "bare CR line", PSMTP, L("A: b", "\r", "c"), CLEANUP_OK, RCV_SMTP "A: b\r\n\r\n\r\r\nc\r\n" },
	{ "mbox From_ line", PLOCAL, L("From u@example.org Mon Jan  1 00:00:00 2024", "Subject: x"),
	  CLEANUP_OK, RCV_LOCAL ADDED "\r\nFrom u@example.org Mon Jan  1 00:00:00 2024\r\nSubject: x\r\n" },
	{ "odd but valid fields", PSMTP,
	  L("Name:", "Name:value", "X-\xc3\xa9: no", "A: b"), CLEANUP_OK,
	  RCV_SMTP "Name:\r\nName:value\r\n\r\nX-\xc3\xa9: no\r\nA: b\r\n" },
	{ "every printable in a field name", PSMTP,
	  L("!\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~: v"),
	  CLEANUP_OK,
	  RCV_SMTP "!\"#$%&'()*+,-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~: v\r\n\r\n" },
	{ "lone whitespace continuation", PSMTP, L("A: b", "\t", " "), CLEANUP_OK,
	  RCV_SMTP "A: b\r\n\t\r\n \r\n\r\n" },

	/* the header limit */
	{ "limit 0, header", { .hostname = HOST, .proto = "ESMTP", .sender = "", .header_size_limit = 0 },
	  L("A: b", "", "c"), CLEANUP_HEADER_TOO_BIG, NULL },
	{ "limit 0, no header", { .hostname = HOST, .proto = "ESMTP", .sender = "", .header_size_limit = 0 },
	  L("", "c"), CLEANUP_OK,
	  "Received: by " HOST " (postern)\r\n\twith ESMTP id {ID}; {DATE}\r\n\r\nc\r\n" },
	{ "limit 6, one header of 6", { .hostname = HOST, .proto = "ESMTP", .sender = "", .header_size_limit = 6 },
	  L("A: b", "", "a much longer body line than the limit"), CLEANUP_OK,
	  "Received: by " HOST " (postern)\r\n\twith ESMTP id {ID}; {DATE}\r\nA: b\r\n\r\n"
	  "a much longer body line than the limit\r\n" },
	{ "limit 5, one header of 6", { .hostname = HOST, .proto = "ESMTP", .sender = "", .header_size_limit = 5 },
	  L("A: b", "", "c"), CLEANUP_HEADER_TOO_BIG, NULL },
};

static void test_cleanup_table(void **state)
{
	struct fx *fx = *state;
	int failures = 0;
	size_t n = sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < n; i++) {
		const struct ccase *c = &cases[i];
		size_t nlines = 0;
		struct run r;
		while (c->lines[nlines] != NULL)
			nlines++;
		run_cleanup(fx, &c->p, c->lines, NULL, nlines, false, &r);
		if (r.status != c->status) {
			print_error("%s: status %d, expected %d\n", c->name, r.status, c->status);
			failures++;
		} else {
			failures += compare_content(fx, c->name, &r, c->want);
		}
		free(r.content);
	}
	if (failures > 0)
		fail_msg("%d of %zu cleanup cases failed", failures, n);
}

/* ---- generated cases ---- */

static const struct cleanup_params smtp_params = PSMTP;
static const struct cleanup_params local_params = PLOCAL;

/* header_size_limit counts every header line with its CRLF (not the Received header, not
   the separator, not the body) and is exceeded only past the limit. */
static void test_cleanup_header_limit(void **state)
{
	struct fx *fx = *state;
	enum { LIM = 1000 };
	char pad[LIM + 2];
	struct cleanup_params p = smtp_params;
	p.header_size_limit = LIM;
	/* "Subject: hello" 16 + " more" 7 + the pad line + 2 + "X-Last: 1" 11 == LIM */
	size_t padlen = LIM - 16 - 7 - 2 - 11;
	for (int extra = 0; extra <= 1; extra++) {
		memset(pad, 'p', sizeof(pad));
		memcpy(pad, "X-Pad: ", 7);
		pad[padlen + (size_t)extra] = '\0';
		const char *lines[] = { "Subject: hello", " more", pad, "X-Last: 1", "", "body" };
		struct run r;
		run_cleanup(fx, &p, lines, NULL, 6, false, &r);
		if (extra == 0) {
			assert_int_equal(r.status, CLEANUP_OK);
			assert_int_equal(r.first_bad, SIZE_MAX);
			assert_non_null(strstr(r.content, pad));
			assert_non_null(strstr(r.content, "X-Last: 1\r\n\r\nbody\r\n"));
		} else {
			assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
			assert_int_equal(r.first_bad, 3);
			assert_null(r.content);
		}
		free(r.content);
	}

	/* the body is not counted: a 1 MiB body under a 20-byte limit */
	p.header_size_limit = 20;
	static char body[1 << 20];
	memset(body, 'b', sizeof(body) - 1);
	const char *lines[] = { "Subject: exactly20", "", body };
	struct run r;
	run_cleanup(fx, &p, lines, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_OK);
	assert_int_equal(r.len, strlen(r.content));
	assert_true(r.len > sizeof(body));
	free(r.content);
	p.header_size_limit = 19;
	run_cleanup(fx, &p, lines, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
	assert_int_equal(r.first_bad, 0);
	free(r.content);

	/* continuation lines count */
	p.header_size_limit = 12;
	const char *folded[] = { "A: b", " c", " d" }; /* 6 + 4 + 4 */
	run_cleanup(fx, &p, folded, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
	assert_int_equal(r.first_bad, 2);
	free(r.content);
	p.header_size_limit = 14;
	run_cleanup(fx, &p, folded, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_OK);
	free(r.content);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_cleanup_long_lines(void **state)
{
	struct fx *fx = *state;
	enum { K100 = 100000 };
	char *a = repeat('a', K100);
	struct buf line = { 0 }, want = { 0 };
	struct run r;
	struct cleanup_params p = local_params;

	/* a 100k header field under a limit just big enough, then just too small */
	buf_printf(&line, "X-Long: %s", a);
	const char *l1[] = { line.data, "", "b" };
	p.header_size_limit = (int64_t)line.len + 2;
	run_cleanup(fx, &p, l1, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_OK);
	buf_printf(&want, RCV_LOCAL "%s\r\n" ADDED "\r\nb\r\n", line.data);
	assert_int_equal(compare_content(fx, "100k header", &r, want.data), 0);
	free(r.content);
	p.header_size_limit = (int64_t)line.len + 1;
	run_cleanup(fx, &p, l1, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
	assert_int_equal(r.first_bad, 0);
	free(r.content);

	/* a 100k field name */
	p.header_size_limit = INT64_MAX;
	buf_reset(&line);
	buf_printf(&line, "%s: v", a);
	const char *l2[] = { line.data, " and a continuation", "" };
	run_cleanup(fx, &p, l2, NULL, 3, false, &r);
	buf_reset(&want);
	buf_printf(&want, RCV_LOCAL "%s\r\n and a continuation\r\n" ADDED "\r\n", line.data);
	assert_int_equal(r.status, CLEANUP_OK);
	assert_int_equal(compare_content(fx, "100k field name", &r, want.data), 0);
	free(r.content);

	/* 100k without a colon, and 100k of spaces as the first line: body */
	p = smtp_params;
	const char *l3[] = { "Subject: s", a, "X: y" };
	run_cleanup(fx, &p, l3, NULL, 3, false, &r);
	buf_reset(&want);
	buf_printf(&want, RCV_SMTP "Subject: s\r\n\r\n%s\r\nX: y\r\n", a);
	assert_int_equal(r.status, CLEANUP_OK);
	assert_int_equal(compare_content(fx, "100k without colon", &r, want.data), 0);
	free(r.content);
	char *sp = repeat(' ', K100);
	const char *l4[] = { sp, "X: y" };
	run_cleanup(fx, &p, l4, NULL, 2, false, &r);
	buf_reset(&want);
	buf_printf(&want, RCV_SMTP "\r\n%s\r\nX: y\r\n", sp);
	assert_int_equal(compare_content(fx, "100k spaces first", &r, want.data), 0);
	free(r.content);

	/* a 100k continuation counts against the default limit */
	const char *l5[] = { "Subject: s", sp, "" };
	p.header_size_limit = K100;
	run_cleanup(fx, &p, l5, NULL, 3, false, &r);
	assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
	assert_int_equal(r.first_bad, 1);
	free(r.content);

	/* a 100k field with a colon at the very end */
	buf_reset(&line);
	buf_printf(&line, "%s:", a);
	const char *l6[] = { line.data };
	p.header_size_limit = INT64_MAX;
	run_cleanup(fx, &p, l6, NULL, 1, false, &r);
	buf_reset(&want);
	buf_printf(&want, RCV_SMTP "%s\r\n\r\n", line.data);
	assert_int_equal(compare_content(fx, "100k name, colon last", &r, want.data), 0);
	free(r.content);

	free(a);
	free(sp);
	buf_free(&line);
	buf_free(&want);
}

/* raw mode and body lines keep every byte, NUL and lone CR/LF included. */
static void test_cleanup_raw_bytes(void **state)
{
	struct fx *fx = *state;
	static const char l0[] = "Return-Path: <x>";
	static const char l1[] = "a\0b";
	static const char l2[] = "\r";
	static const char l3[] = "\n";
	static const char l4[] = "\xff\xfe\x00\x01";
	static const char l5[] = "";
	const char *lines[] = { l0, l1, l2, l3, l4, l5 };
	const size_t lens[] = { sizeof(l0) - 1, 3, 1, 1, 4, 0 };
	static const char want_raw[] = "Return-Path: <x>\r\na\0b\r\n\r\r\n\n\r\n\xff\xfe\x00\x01\r\n\r\n";
	struct cleanup_params p = local_params;
	struct run r;
	p.raw = true;
	run_cleanup(fx, &p, lines, lens, 6, false, &r);
	assert_int_equal(r.status, CLEANUP_OK);
	assert_int_equal(r.len, sizeof(want_raw) - 1);
	assert_memory_equal(r.content, want_raw, sizeof(want_raw) - 1);
	free(r.content);

	/* the same lines as a body after a header */
	const char *body[] = { "A: b", "", l1, l2, l3, l4 };
	const size_t blens[] = { 4, 0, 3, 1, 1, 4 };
	static const char want_body[] = "A: b\r\n\r\na\0b\r\n\r\r\n\n\r\n\xff\xfe\x00\x01\r\n";
	p = smtp_params;
	run_cleanup(fx, &p, body, blens, 6, false, &r);
	assert_int_equal(r.status, CLEANUP_OK);
	assert_true(r.len > sizeof(want_body) - 1);
	assert_memory_equal(r.content + r.len - (sizeof(want_body) - 1), want_body,
			    sizeof(want_body) - 1);
	assert_memory_equal(r.content, "Received: from helo.example", 27);
	free(r.content);

	/* len is authoritative: bytes after it are not written */
	const char *cut[] = { "Subject: abcdef" };
	const size_t cutlens[] = { 10 };
	p.raw = true;
	run_cleanup(fx, &p, cut, cutlens, 1, false, &r);
	assert_int_equal(r.len, 12);
	assert_memory_equal(r.content, "Subject: a\r\n", 12);
	free(r.content);
}

/* A write error is reported, at the latest by cleanup_finish. */
static void test_cleanup_write_error(void **state)
{
	struct fx *fx = *state;
	struct run r;
	const char *small[] = { "Subject: x", "", "body" };
	run_cleanup(fx, &smtp_params, small, NULL, 3, true, &r);
	assert_int_equal(r.status, CLEANUP_WRITE_ERROR);
	assert_null(r.content);

	char *big = repeat('x', 70000);
	const char *lines[] = { "Subject: x", "", big, "after" };
	run_cleanup(fx, &smtp_params, lines, NULL, 4, true, &r);
	assert_int_equal(r.status, CLEANUP_WRITE_ERROR);
	assert_int_equal(r.first_bad, 2);
	assert_int_equal(r.line_status, CLEANUP_WRITE_ERROR);

	struct cleanup_params p = smtp_params;
	p.raw = true;
	run_cleanup(fx, &p, lines, NULL, 4, true, &r);
	assert_int_equal(r.status, CLEANUP_WRITE_ERROR);
	assert_int_equal(r.first_bad, 2);
	free(big);

	/* a header that is too big wins over a later write error */
	p = smtp_params;
	p.header_size_limit = 1;
	run_cleanup(fx, &p, small, NULL, 3, true, &r);
	assert_int_equal(r.status, CLEANUP_HEADER_TOO_BIG);
}

int main(void)
{
	log_init("test_cleanup", LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cleanup_table, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_header_limit, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_long_lines, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_raw_bytes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_write_error, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
