/* libFuzzer target for cleanup (src/queue/cleanup.c) over a real queue file in a temporary
   spool. The first three input bytes choose the parameters (flags, then the header size limit,
   big-endian); the rest is split on CRLF into content lines. Besides memory errors it checks
   the promises of cleanup.h against a small model: the status, the line that first exceeds the
   header limit, and the exact content written (raw: the lines unaltered; otherwise the
   Received header, the header lines minus Return-Path, the added fields, one separator and
   the body). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/cleanup.h"
#include "queue/qfile.h"
#include "queue/queue_id.h"
#include "queue/spool.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include "fuzz_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	F_LOCAL = 1 << 0,
	F_RAW = 1 << 1,
	F_CLIENT = 1 << 2,
	F_TLS = 1 << 3,
	F_FOR = 1 << 4,
	F_NAME = 1 << 5,  /* a full name that needs quoting */
	F_NULL = 1 << 6,  /* the null sender */
	F_NAME2 = 1 << 7, /* a plain full name */
};

#define HOST "mx.example"

static void setup(void)
{
	fuzz_spool_setup("fuzz-cleanup");
}

struct line {
	const char *p;
	size_t len;
};

/* Splits on CRLF; a last piece without CRLF is a line when it is not empty. */
static size_t split_lines(const char *s, size_t n, struct line *lines)
{
	size_t count = 0, start = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n') {
			lines[count++] = (struct line){ s + start, i - start };
			start = i + 2;
			i++;
		}
	}
	if (start < n)
		lines[count++] = (struct line){ s + start, n - start };
	return count;
}

/* ---- the model ---- */

static size_t field_name(const struct line *l)
{
	size_t i = 0;
	while (i < l->len && l->p[i] > 32 && l->p[i] < 127 && l->p[i] != ':')
		i++;
	return i > 0 && i < l->len && l->p[i] == ':' ? i : 0;
}

static bool name_is(const struct line *l, size_t namelen, const char *name)
{
	return namelen == strlen(name) && strncasecmp(l->p, name, namelen) == 0;
}

struct model {
	enum cleanup_status status;
	size_t first_bad; /* SIZE_MAX: none */
	struct buf head;  /* header lines kept */
	size_t body;      /* index of the first body line */
	bool separator;   /* a blank line ended the header */
	bool from, date, message_id;
};

static void model_run(const struct line *lines, size_t n, int64_t limit, struct model *m)
{
	int64_t header_size = 0;
	bool dropping = false;
	m->status = CLEANUP_OK;
	m->first_bad = SIZE_MAX;
	m->separator = false;
	m->from = m->date = m->message_id = false;
	m->body = n;
	for (size_t i = 0; i < n; i++) {
		const struct line *l = &lines[i];
		if (l->len == 0) {
			m->separator = true;
			m->body = i + 1;
			return;
		}
		size_t namelen = field_name(l);
		bool cont = (l->p[0] == ' ' || l->p[0] == '\t') && header_size > 0;
		if (namelen == 0 && !cont) {
			m->body = i;
			return;
		}
		header_size += (int64_t)l->len + 2;
		if (header_size > limit && m->status == CLEANUP_OK) {
			m->status = CLEANUP_HEADER_TOO_BIG;
			m->first_bad = i;
		}
		if (namelen > 0) {
			dropping = name_is(l, namelen, "Return-Path");
			m->from |= name_is(l, namelen, "From");
			m->date |= name_is(l, namelen, "Date");
			m->message_id |= name_is(l, namelen, "Message-ID");
		}
		if (!dropping) {
			buf_append(&m->head, l->p, l->len);
			buf_puts(&m->head, "\r\n");
		}
	}
}

/* The expected content after the Received header, with the Date written for time t. */
static void model_content(const struct model *m, const struct cleanup_params *p,
			  const struct line *lines, size_t n, time_t t, struct buf *b)
{
	char date[64];
	buf_reset(b);
	buf_append(b, m->head.data != NULL ? m->head.data : "", m->head.len);
	if (p->local && !m->from) {
		buf_puts(b, "From: ");
		if (p->full_name != NULL && strcmp(p->full_name, "Doe, John") == 0)
			buf_puts(b, "\"Doe, John\" ");
		else if (p->full_name != NULL)
			buf_printf(b, "%s ", p->full_name);
		buf_printf(b, "<%s>\r\n", p->sender[0] ? p->sender : "MAILER-DAEMON");
	}
	if (p->local && !m->date)
		buf_printf(b, "Date: %s\r\n", time_rfc5322(t, date, sizeof(date)));
	if (p->local && !m->message_id)
		buf_printf(b, "Message-ID: <%s.postern@%s>\r\n", p->id, HOST);
	buf_puts(b, "\r\n");
	for (size_t i = m->body; i < n; i++) {
		buf_append(b, lines[i].p, lines[i].len);
		buf_puts(b, "\r\n");
	}
}

/* Returns the length of the Received header at the start of content, checking its shape. */
static size_t received_len(const char *content, size_t len, const char *id)
{
	const char *prefix = "Received: ";
	require(len > strlen(prefix) && memcmp(content, prefix, strlen(prefix)) == 0);
	size_t end = 0;
	for (;;) {
		const char *crlf = memmem(content + end, len - end, "\r\n", 2);
		require(crlf != NULL);
		end = (size_t)(crlf - content) + 2;
		if (end >= len || content[end] != '\t')
			break;
	}
	char want[64];
	snprintf(want, sizeof(want), " id %s", id);
	require(memmem(content, end, want, strlen(want)) != NULL);
	require(memmem(content, end, " (postern)", 10) != NULL);
	return end;
}

static char *read_content(struct qfile *qf, size_t *len_r)
{
	struct queue_envelope env;
	off_t off;
	uint64_t size;
	const char *why;
	require(qfile_load(qfile_path(qf), &env, &off, &size, &why) == 0);
	require(strcmp(env.id, qfile_id(qf)) == 0);
	queue_envelope_clear(&env);
	require(size == qfile_content_size(qf));
	char *content = malloc(size + 1);
	require(content != NULL);
	int fd = open(qfile_path(qf), O_RDONLY | O_CLOEXEC);
	require(fd >= 0 && pread(fd, content, size, off) == (ssize_t)size);
	close(fd);
	*len_r = size;
	return content;
}

static void check(const struct cleanup_params *p, const struct line *lines, size_t n,
		  enum cleanup_status status, size_t first_bad, struct qfile *qf, time_t t0, time_t t1)
{
	if (p->raw) {
		require(status == CLEANUP_OK && first_bad == SIZE_MAX);
		struct buf want = { 0 };
		for (size_t i = 0; i < n; i++) {
			buf_append(&want, lines[i].p, lines[i].len);
			buf_puts(&want, "\r\n");
		}
		size_t len;
		char *got = read_content(qf, &len);
		require(len == want.len && (len == 0 || memcmp(got, want.data, len) == 0));
		free(got);
		buf_free(&want);
		return;
	}
	struct model m = { .head = { 0 } };
	model_run(lines, n, p->header_size_limit, &m);
	require(status == m.status && first_bad == m.first_bad);
	if (status == CLEANUP_OK) {
		size_t len;
		char *got = read_content(qf, &len);
		size_t rl = received_len(got, len, p->id);
		struct buf want = { 0 };
		bool match = false;
		for (time_t t = t0; t <= t1 && !match; t++) {
			model_content(&m, p, lines, n, t, &want);
			match = want.len == len - rl && memcmp(got + rl, want.data, want.len) == 0;
		}
		require(match);
		free(got);
		buf_free(&want);
	}
	buf_free(&m.head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	setup();
	unsigned flags = data[0];
	unsigned limit = (unsigned)data[1] << 8 | data[2];
	const char *text = (const char *)data + 3;
	size_t tlen = size - 3;
	struct line *lines = malloc((tlen / 2 + 1) * sizeof(*lines));
	require(lines != NULL);
	size_t n = split_lines(text, tlen, lines);

	struct queue_envelope env = { .sender = NULL };
	queue_id_new(env.id);
	queue_envelope_set(&env.sender, flags & F_NULL ? "" : "u@example.org");
	queue_envelope_add_rcpt(&env, "r@example.net", 0, NULL);
	struct qfile *qf;
	require(qfile_create(spool, &env, &qf) == 0);
	struct cleanup_params p = {
		.id = env.id,
		.hostname = HOST,
		.client_addr = flags & F_CLIENT ? "192.0.2.1" : NULL,
		.client_name = flags & F_CLIENT ? "client.example.net" : NULL,
		.helo = flags & F_CLIENT ? "helo.example" : NULL,
		.proto = flags & F_LOCAL ? "local" : "ESMTP",
		.tls = flags & F_TLS ? "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256" : NULL,
		.sender = env.sender,
		.for_rcpt = flags & F_FOR ? "r@example.net" : NULL,
		.full_name = flags & F_NAME ? "Doe, John" : flags & F_NAME2 ? "John Doe" : NULL,
		.local = (flags & F_LOCAL) != 0,
		.raw = (flags & F_RAW) != 0,
		.header_size_limit = limit == 0xFFFF ? INT64_MAX : (int64_t)limit,
	};
	time_t t0 = time(NULL);
	struct cleanup *c = cleanup_new(&p, qf);
	enum cleanup_status last = CLEANUP_OK;
	size_t first_bad = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		enum cleanup_status st = cleanup_line(c, lines[i].p, lines[i].len);
		require(last == CLEANUP_OK || st == last); /* sticky */
		if (st != CLEANUP_OK && first_bad == SIZE_MAX)
			first_bad = i;
		last = st;
	}
	enum cleanup_status status = cleanup_finish(c);
	time_t t1 = time(NULL);
	require(last == CLEANUP_OK || status == last);
	require(status != CLEANUP_WRITE_ERROR);
	cleanup_free(&c);
	require(c == NULL);
	check(&p, lines, n, status, first_bad, qf, t0, t1);
	qfile_abort(&qf);
	queue_envelope_clear(&env);
	free(lines);
	return 0;
}
