#include "queue/cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "queue/qfile.h"
#include "route/router.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

enum cleanup_phase { CLEANUP_HEADERS, CLEANUP_BODY };

struct cleanup {
	struct qfile *qf;
	enum cleanup_phase phase;
	enum cleanup_status status;
	bool local, raw, dropping, seen_message_id, seen_date, seen_from;
	int64_t header_size, header_size_limit;
	char *id, *hostname, *sender, *full_name;
	struct router *router; /* a reference: a reload while the message is written is no matter */
	const struct rewrite *rewrite; /* router's header rules, or NULL */
	struct buf field; /* an address field being collected for rewriting, folded lines and all */
};

static void cleanup_put(struct cleanup *c, const char *data, size_t len)
{
	if (c->status != CLEANUP_OK)
		return;
	if (qfile_write(c->qf, data, len) < 0 || qfile_write(c->qf, "\r\n", 2) < 0)
		c->status = CLEANUP_WRITE_ERROR;
}

static void cleanup_put_buf(struct cleanup *c, struct buf *b)
{
	if (c->status == CLEANUP_OK && qfile_write(c->qf, b->data, b->len) < 0)
		c->status = CLEANUP_WRITE_ERROR;
	buf_reset(b);
}

static void cleanup_received(struct cleanup *c, const struct cleanup_params *p)
{
	struct buf b = { 0 };
	char date[64];
	buf_puts(&b, "Received:");
	if (p->client_addr != NULL)
		buf_printf(&b, " from %s (%s [%s])\r\n\tby", p->helo ? p->helo : "unknown",
			   p->client_name ? p->client_name : "unknown", p->client_addr);
	else
		buf_puts(&b, " by");
	buf_printf(&b, " %s (postern)", p->hostname);
	if (p->tls != NULL)
		buf_printf(&b, "\r\n\t(using %s)", p->tls);
	buf_printf(&b, "\r\n\twith %s id %s", p->proto, p->id);
	if (p->for_rcpt != NULL)
		buf_printf(&b, "\r\n\tfor <%s>", p->for_rcpt);
	buf_printf(&b, "; %s\r\n", time_rfc5322(time(NULL), date, sizeof(date)));
	cleanup_put_buf(c, &b);
	buf_free(&b);
}

struct cleanup *cleanup_new(const struct cleanup_params *p, struct qfile *qf)
{
	struct cleanup *c = xcalloc(1, sizeof(*c));
	c->qf = qf;
	c->local = p->local;
	c->raw = p->raw;
	c->header_size_limit = p->header_size_limit;
	c->id = xstrdup(p->id);
	c->hostname = xstrdup(p->hostname);
	c->sender = xstrdup(p->sender);
	c->full_name = p->full_name ? xstrdup(p->full_name) : NULL;
	c->router = router_ref(p->router);
	c->rewrite = router_header_rules(c->router);
	if (c->raw)
		c->phase = CLEANUP_BODY;
	else
		cleanup_received(c, p);
	return c;
}

/* Returns the length of the field name when line starts a header field, else 0. */
static size_t cleanup_field_name(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && line[i] > 32 && line[i] < 127 && line[i] != ':')
		i++;
	return i > 0 && i < len && line[i] == ':' ? i : 0;
}

static bool cleanup_is(const char *line, size_t namelen, const char *name)
{
	return namelen == strlen(name) && strncasecmp(line, name, namelen) == 0;
}

static void cleanup_note_field(struct cleanup *c, const char *line, size_t namelen)
{
	c->dropping = cleanup_is(line, namelen, "Return-Path");
	if (cleanup_is(line, namelen, "Message-ID"))
		c->seen_message_id = true;
	else if (cleanup_is(line, namelen, "Date"))
		c->seen_date = true;
	else if (cleanup_is(line, namelen, "From"))
		c->seen_from = true;
}

/* A display name goes out as a quoted-string unless it is plain atoms and spaces. */
static void cleanup_put_name(struct buf *b, const char *name)
{
	if (strcspn(name, "()<>[]:;@\\,.\"") == strlen(name)) {
		buf_printf(b, "%s ", name);
		return;
	}
	buf_putc(b, '"');
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *p);
	}
	buf_puts(b, "\" ");
}

static void cleanup_add_missing(struct cleanup *c)
{
	struct buf b = { 0 };
	char date[64];
	if (c->local && !c->seen_from) {
		buf_puts(&b, "From: ");
		if (c->full_name != NULL && c->full_name[0] != '\0')
			cleanup_put_name(&b, c->full_name);
		buf_printf(&b, "<%s>\r\n", c->sender[0] ? c->sender : "MAILER-DAEMON");
	}
	if (c->local && !c->seen_date)
		buf_printf(&b, "Date: %s\r\n", time_rfc5322(time(NULL), date, sizeof(date)));
	if (c->local && !c->seen_message_id)
		buf_printf(&b, "Message-ID: <%s.postern@%s>\r\n", c->id, c->hostname);
	cleanup_put_buf(c, &b);
	buf_free(&b);
}

static const char *const cleanup_address_fields[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Resent-From", "Resent-Sender",
	"Resent-To", "Resent-Cc", "Resent-Bcc", NULL,
};

static bool cleanup_address_field(const char *line, size_t namelen)
{
	for (const char *const *f = cleanup_address_fields; *f != NULL; f++) {
		if (cleanup_is(line, namelen, *f))
			return true;
	}
	return false;
}

/* Writes the collected address field with its domains rewritten, line by line as folded. */
static void cleanup_flush_field(struct cleanup *c)
{
	if (c->field.len == 0)
		return;
	const char *s = buf_str(&c->field);
	const char *colon = strchr(s, ':');
	char name[32];
	snprintf(name, sizeof(name), "%.*s", (int)(colon - s), s);
	struct buf out = { 0 };
	buf_append(&out, s, (size_t)(colon + 1 - s));
	rewrite_header(c->rewrite, name, colon + 1, &out);
	const char *p = buf_str(&out), *end = p + out.len;
	for (;;) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		cleanup_put(c, p, eol != NULL ? (size_t)(eol - p) : (size_t)(end - p));
		if (eol == NULL)
			break;
		p = eol + 2;
	}
	buf_free(&out);
	buf_reset(&c->field);
}

static void cleanup_end_headers(struct cleanup *c, bool separator_seen)
{
	cleanup_flush_field(c);
	cleanup_add_missing(c);
	if (!separator_seen)
		cleanup_put(c, "", 0);
	c->phase = CLEANUP_BODY;
}

/* An address field is collected whole (it may be folded) when its domains are to be
   rewritten; every other line goes straight to the file. */
static void cleanup_header_line(struct cleanup *c, const char *line, size_t len)
{
	bool continuation = len > 0 && (line[0] == ' ' || line[0] == '\t') && c->header_size > 0;
	if (!continuation)
		cleanup_flush_field(c);
	if (len == 0) {
		cleanup_end_headers(c, true);
		cleanup_put(c, line, len);
		return;
	}
	size_t namelen = cleanup_field_name(line, len);
	if (namelen == 0 && !continuation) {
		cleanup_end_headers(c, false);
		cleanup_put(c, line, len);
		return;
	}
	c->header_size += (int64_t)len + 2;
	if (c->header_size > c->header_size_limit && c->status == CLEANUP_OK)
		c->status = CLEANUP_HEADER_TOO_BIG;
	if (namelen > 0)
		cleanup_note_field(c, line, namelen);
	if (c->dropping)
		return;
	if (c->rewrite != NULL && (namelen > 0 ? cleanup_address_field(line, namelen) : c->field.len > 0)) {
		if (c->field.len > 0)
			buf_append(&c->field, "\r\n", 2);
		buf_append(&c->field, line, len);
		return;
	}
	cleanup_put(c, line, len);
}

enum cleanup_status cleanup_line(struct cleanup *c, const char *line, size_t len)
{
	if (c->phase == CLEANUP_HEADERS)
		cleanup_header_line(c, line, len);
	else
		cleanup_put(c, line, len);
	return c->status;
}

enum cleanup_status cleanup_finish(struct cleanup *c)
{
	if (c->phase == CLEANUP_HEADERS)
		cleanup_end_headers(c, false);
	if (c->status == CLEANUP_OK && qfile_finish(c->qf) < 0)
		c->status = CLEANUP_WRITE_ERROR;
	return c->status;
}

void cleanup_free(struct cleanup **c)
{
	if (*c == NULL)
		return;
	free((*c)->id);
	free((*c)->hostname);
	free((*c)->sender);
	free((*c)->full_name);
	buf_free(&(*c)->field);
	router_free(&(*c)->router);
	xfree(c);
}
