#include "msg/ndr.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "msg/address.h"
#include "smtp/command.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

/* Delivery status notifications: RFC 3464 (message/delivery-status), RFC 6522
   (multipart/report), RFC 3461 6 (what an SMTP server's DSN carries), RFC 6533 (UTF-8
   addresses). The report is built in memory except for the returned original, which is read
   with pread and streamed: it may be as large as the biggest message the queue takes. */

#define NDR_LINE_MAX 998       /* octets of a line without its CRLF (RFC 5322 2.1.1) */
#define NDR_FOLD_WIDTH 78      /* where fields are folded when there is a choice (ditto) */
#define NDR_TEXT_WIDTH 72      /* the text part's lines: room for quoted-printable's "=" */
#define NDR_CHUNK 65536        /* bytes of the original per pread */
#define NDR_BOUNDARY_TRIES 8   /* a clash past the first is already deliberate */
#define NDR_QID_MAX 32         /* queue ID characters put in the boundary (limit 70 in all) */
#define NDR_CONT_FIELD "\r\n " /* a folded field goes on after white space (RFC 5322 2.2.3) */
#define NDR_CONT_PARA "\r\n"
#define NDR_CONT_ENTRY "\r\n    " /* a recipient's lines after the first are indented */

enum ndr_return { NDR_RETURN_NONE, NDR_RETURN_HEADERS, NDR_RETURN_FULL };

/* What a pass over the original found. Line ends are counted as ndr_crlf writes them: CR, LF
   and CRLF each end one line. */
struct ndr_scan {
	uint64_t pos;          /* source bytes looked at */
	uint64_t line_start;   /* where the current line begins */
	size_t line_len;       /* its octets so far */
	bool after_cr;         /* an LF now completes a CRLF */
	bool hdr_done;         /* the empty line after the header was seen */
	uint64_t hdr_len;      /* bytes of the header, its last line end included */
	bool hdr_8bit, body_8bit;
	bool hdr_unfit, body_unfit; /* a NUL or a line over NDR_LINE_MAX */
};

struct ndr_src {
	int fd;
	off_t off;
	uint64_t size;
};

struct ndr_report {
	const struct ndr_params *p;
	const struct ndr_rcpt *rcpts;
	size_t n;
	struct ndr_src src;
	ndr_write_fn *write;
	void *arg;
	struct buf host;    /* reporting_mta, cleaned */
	struct buf human;   /* body of the text/plain part, as written */
	bool human_qp;      /* ... in quoted-printable, for the UTF-8 in it */
	struct buf status;  /* body of the message/delivery-status part */
	struct ndr_scan scan;
	enum ndr_return ret;
	char boundary[96];
};

/* Length of the UTF-8 character at u when it is well-formed, else 0 (1 for ASCII). */
static size_t ndr_utf8_len(const unsigned char *u)
{
	size_t n = u[0] < 0x80 ? 1 : u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : 2;

	if (strnlen((const char *)u, n) < n || !address_utf8_valid((const char *)u, n))
		return 0;
	return n;
}

/* Appends s as one line of text: controls and runs of white space become one space and the
   ends are trimmed, so that nothing a peer said can end a line of the report. Bytes above
   0x7F stay as whole UTF-8 characters when utf8; otherwise (and when malformed) each
   character becomes one '?'. */
static void ndr_clean(struct buf *b, const char *s, bool utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t start = b->len;
	bool space = false;

	while (*u != '\0') {
		size_t n = ndr_utf8_len(u);
		if (*u <= ' ' || *u == 0x7F) {
			space = b->len > start;
			u++;
			continue;
		}
		if (space)
			buf_putc(b, ' ');
		space = false;
		if (*u < 0x80)
			buf_putc(b, (char)*u);
		else if (utf8 && n > 0)
			buf_append(b, u, n);
		else
			buf_putc(b, '?');
		u += n > 0 ? n : 1;
	}
}

/* True when s survives ndr_clean unchanged as ASCII: printable, single spaces inside. */
static bool ndr_plain(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || s[0] == ' ' || s[len - 1] == ' ' || strstr(s, "  ") != NULL)
		return false;
	for (; *s != '\0'; s++)
		if (*s < ' ' || *s > '~')
			return false;
	return true;
}

static bool ndr_has_8bit(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

/* Appends one word from column col, broken where it would pass NDR_LINE_MAX (never inside a
   UTF-8 character). Only a word longer than a line is cut; a folded field then reads with
   one space more, which cannot be helped. Returns the column after it. */
static size_t ndr_word(struct buf *b, const char *w, size_t len, size_t col, const char *cont)
{
	size_t indent = strlen(cont) - 2;

	while (col + len > NDR_LINE_MAX) {
		size_t room = NDR_LINE_MAX - col, take = room;
		while (take > 0 && ((unsigned char)w[take] & 0xC0) == 0x80)
			take--;
		if (take == 0)
			take = room;
		buf_append(b, w, take);
		buf_puts(b, cont);
		w += take;
		len -= take;
		col = indent;
	}
	buf_append(b, w, len);
	return col + len;
}

/* Appends cleaned text from column col, breaking before a word that would pass width;
   each break writes cont (CRLF and the next line's indent) in place of the space. Ends
   without a line break. */
static void ndr_wrap(struct buf *b, const char *text, size_t col, size_t width, const char *cont)
{
	bool fresh = true;

	for (text += strspn(text, " "); *text != '\0'; text += strspn(text, " ")) {
		size_t w = strcspn(text, " ");
		if (!fresh && col + 1 + w > width) {
			buf_puts(b, cont);
			col = strlen(cont) - 2;
			fresh = true;
		}
		if (!fresh) {
			buf_putc(b, ' ');
			col++;
		}
		col = ndr_word(b, text, w, col, cont);
		fresh = false;
		text += w;
	}
}

/* Appends "name: value" CRLF, folded; value must be clean. */
static void ndr_field(struct buf *b, const char *name, const char *value)
{
	buf_printf(b, "%s: ", name);
	ndr_wrap(b, value, strlen(name) + 2, NDR_FOLD_WIDTH, NDR_CONT_FIELD);
	buf_puts(b, "\r\n");
}

/* Appends "name: type; value" with value cleaned to ASCII (the fields of
   message/delivery-status are 7-bit, RFC 3464 2.1). */
static void ndr_field_typed(struct buf *b, const char *name, const char *type, const char *value)
{
	struct buf v = { 0 };

	if (type != NULL)
		buf_printf(&v, "%s; ", type);
	ndr_clean(&v, value, false);
	ndr_field(b, name, buf_str(&v));
	buf_free(&v);
}

/* Appends a date field; RFC 3464 wants numeric zones, which time_rfc5322 writes. */
static void ndr_date_field(struct buf *b, const char *name, int64_t us)
{
	char date[64];

	ndr_field(b, name, time_rfc5322((time_t)(us / 1000000), date, sizeof(date)));
}

/* Appends a paragraph of cleaned text and an empty line. */
static void ndr_para(struct buf *b, const char *text)
{
	ndr_wrap(b, text, 0, NDR_TEXT_WIDTH, NDR_CONT_PARA);
	buf_puts(b, "\r\n\r\n");
}

/* RFC 3464 2.3.3; a missing or unknown action is the one the report's kind implies. */
static const char *ndr_action(const struct ndr_params *p, const struct ndr_rcpt *rc)
{
	static const char *const valid[] = { "failed", "delayed", "delivered", "relayed",
					     "expanded" };
	static const char *const by_kind[] = { [NDR_FAILURE] = "failed", [NDR_DELAY] = "delayed",
					       [NDR_SUCCESS] = "delivered" };

	for (size_t i = 0; rc->action != NULL && i < sizeof(valid) / sizeof(valid[0]); i++)
		if (strcasecmp(rc->action, valid[i]) == 0)
			return valid[i];
	return by_kind[p->kind];
}

/* RFC 3464 2.3.4: class 2, 4 or 5, then two numbers of 1-3 digits without leading zeros. */
static bool ndr_status_ok(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(s, "0123456789");
		if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
			return false;
		s += n;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

/* A malformed status becomes the generic code RFC 3461 6.3(g) names for want of a better. */
static const char *ndr_status(const struct ndr_rcpt *rc, const char *action)
{
	if (ndr_status_ok(rc->status))
		return rc->status;
	if (strcmp(action, "failed") == 0)
		return "5.0.0";
	return strcmp(action, "delayed") == 0 ? "4.0.0" : "2.0.0";
}

/* True when the recipient's result came with an SMTP reply (RFC 5321 4.2: 2yz to 5yz). */
static bool ndr_is_reply(const struct ndr_rcpt *rc)
{
	return rc->code >= 200 && rc->code <= 599;
}

/* True when text already starts with the reply code (servers' replies usually do). */
static bool ndr_has_code(const char *text, int code)
{
	char digits[4];

	snprintf(digits, sizeof(digits), "%03d", code);
	return strncmp(text, digits, 3) == 0 && (text[3] == '\0' || text[3] == ' ' ||
						 text[3] == '-');
}

/* The reply as it reads with its SMTP code in front, or our own reason; cleaned. */
static void ndr_reason(struct buf *b, const struct ndr_rcpt *rc, bool utf8)
{
	const char *text = rc->diagnostic != NULL ? rc->diagnostic : "";
	struct buf t = { 0 };

	ndr_clean(&t, text, utf8);
	if (ndr_is_reply(rc) && !ndr_has_code(buf_str(&t), rc->code))
		buf_printf(b, t.len > 0 ? "%d " : "%d", rc->code);
	buf_puts(b, buf_str(&t));
	buf_free(&t);
}

/* RFC 3461 6.3(a): ENVID arrives as xtext but Original-Envelope-Id is not xtext, so it is
   decoded. The id must keep its exact spelling (RFC 3464 2.2.1); one that decodes to
   something a field cannot carry unchanged is left as received, which always can. */
static void ndr_envid(struct buf *b, const char *envid)
{
	size_t len = strlen(envid);
	char *dec = xmalloc(len + 1);
	bool ok = xtext_decode(envid, len, dec, len + 1) >= 0 && ndr_plain(dec);

	ndr_field_typed(b, "Original-Envelope-Id", NULL, ok ? dec : envid);
	free(dec);
}

/* Returns a newly allocated RFC 6533 utf-8-addr-xtext form of the UTF-8 address s (\x{HEX}
   for what is not plain ASCII), the form a 7-bit delivery-status part needs; NULL when s is
   not well-formed UTF-8. */
static char *ndr_utf8_xtext(const char *s)
{
	size_t len = 6 * strlen(s) + 1; /* "\x{20}" is the worst case per input byte */
	char *out = xmalloc(len);

	if (xtext_utf8addr_encode(s, out, len) < 0)
		xfree(&out);
	return out;
}

/* RFC 3461 6.3(d): the value of ORCPT, decoded from xtext as 6.3(a) does for ENVID, so that
   it is the address the sender gave (RFC 3464 2.3.1). A "utf-8" address is written in its
   7-bit form; an rfc822 one that does not decode to plain ASCII stays as received. */
static void ndr_orcpt(struct buf *b, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *type = xstrndup(orcpt, semi != NULL ? (size_t)(semi - orcpt) : 0);
	const char *xt = semi != NULL ? semi + 1 : orcpt;
	size_t len = strlen(xt);
	char *dec = xmalloc(len + 1), *enc = NULL;
	const char *value = xt;

	if (xtext_decode(xt, len, dec, len + 1) >= 0) {
		if (strcasecmp(type, "utf-8") == 0 && (enc = ndr_utf8_xtext(dec)) != NULL)
			value = enc;
		else if (strcasecmp(type, "utf-8") != 0 && ndr_plain(dec))
			value = dec;
	}
	ndr_field_typed(b, "Original-Recipient", ndr_plain(type) ? type : "unknown", value);
	free(type);
	free(dec);
	free(enc);
}

/* RFC 3464 2.3.2 wants the envelope address exactly; one that is not plain ASCII goes as
   address type "utf-8" in utf-8-addr-xtext form (RFC 6533 3), which loses nothing. */
static void ndr_final_recipient(struct buf *b, const char *address)
{
	char *enc = ndr_plain(address) ? NULL : ndr_utf8_xtext(address);

	if (enc != NULL)
		ndr_field_typed(b, "Final-Recipient", "utf-8", enc);
	else
		ndr_field_typed(b, "Final-Recipient", "rfc822", address);
	free(enc);
}

/* An SMTP reply is reported as diagnostic-type "smtp" (RFC 3461 9.2). A reason of our own
   (a timeout, a refused connection, a full disk) has no SMTP code, and dressing it up as a
   reply no server sent would mislead; RFC 3464 2.1.2 keeps "X-" types for private use, so
   it goes as "X-Postern". Non-ASCII text becomes '?' here (the field is 7-bit); the text
   part keeps it. */
static void ndr_diagnostic(struct buf *b, const struct ndr_rcpt *rc)
{
	struct buf v = { 0 };

	ndr_reason(&v, rc, false);
	if (v.len > 0)
		ndr_field_typed(b, "Diagnostic-Code", ndr_is_reply(rc) ? "smtp" : "X-Postern",
				buf_str(&v));
	buf_free(&v);
}

/* One group of per-recipient fields, in RFC 3464 2.3's order, after an empty line. */
static void ndr_status_rcpt(const struct ndr_params *p, const struct ndr_rcpt *rc, struct buf *b)
{
	const char *action = ndr_action(p, rc);

	buf_puts(b, "\r\n");
	if (rc->orcpt != NULL && rc->orcpt[0] != '\0')
		ndr_orcpt(b, rc->orcpt);
	ndr_final_recipient(b, rc->address);
	ndr_field(b, "Action", action);
	ndr_field(b, "Status", ndr_status(rc, action));
	/* given for any attempt to relay (RFC 3461 6.3(h)), also when our reason is reported */
	if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0')
		ndr_field_typed(b, "Remote-MTA", "dns", rc->remote_mta);
	ndr_diagnostic(b, rc);
	if (rc->last_attempt_us > 0)
		ndr_date_field(b, "Last-Attempt-Date", rc->last_attempt_us);
	/* RFC 3464 2.3.9: only in delay reports */
	if (strcmp(action, "delayed") == 0 && rc->will_retry_until_us > 0)
		ndr_date_field(b, "Will-Retry-Until", rc->will_retry_until_us);
}

/* The message/delivery-status body: per-message fields, then a group per recipient. */
static void ndr_status_part(struct ndr_report *r)
{
	const struct ndr_params *p = r->p;
	struct buf *b = &r->status;

	if (p->envid != NULL && p->envid[0] != '\0')
		ndr_envid(b, p->envid);
	ndr_field_typed(b, "Reporting-MTA", "dns", buf_str(&r->host));
	if (p->arrival_us > 0)
		ndr_date_field(b, "Arrival-Date", p->arrival_us);
	for (size_t i = 0; i < r->n; i++)
		ndr_status_rcpt(p, &r->rcpts[i], b);
}

/* What a recipient's action means when there is no reason to quote. */
static const char *ndr_action_phrase(const char *action)
{
	if (strcmp(action, "failed") == 0)
		return "delivery failed";
	if (strcmp(action, "delayed") == 0)
		return "delivery is delayed";
	if (strcmp(action, "relayed") == 0)
		return "passed on to a system that does not confirm delivery";
	if (strcmp(action, "expanded") == 0)
		return "delivered and forwarded to further addresses";
	return "delivered";
}

/* "<address>: what happened", naming the remote host: its reply when it gave one, else our
   reason with the host it concerned. */
static void ndr_human_line(const struct ndr_rcpt *rc, const char *action, struct buf *t)
{
	struct buf reason = { 0 }, host = { 0 };

	ndr_reason(&reason, rc, true);
	ndr_clean(&host, rc->remote_mta != NULL ? rc->remote_mta : "", false);
	buf_putc(t, '<');
	ndr_clean(t, rc->address, true);
	buf_puts(t, ">: ");
	if (host.len > 0 && ndr_is_reply(rc))
		buf_printf(t, "host %s said: %s", buf_str(&host), buf_str(&reason));
	else
		buf_puts(t, reason.len > 0 ? buf_str(&reason) : ndr_action_phrase(action));
	if (host.len > 0 && !ndr_is_reply(rc))
		buf_printf(t, " (while talking to host %s)", buf_str(&host));
	buf_free(&reason);
	buf_free(&host);
}

/* A recipient's paragraph; a delayed one says how long retries go on. */
static void ndr_human_rcpt(const struct ndr_report *r, const struct ndr_rcpt *rc, struct buf *b)
{
	const char *action = ndr_action(r->p, rc);
	struct buf t = { 0 };
	char date[64];

	ndr_human_line(rc, action, &t);
	ndr_wrap(b, buf_str(&t), 0, NDR_TEXT_WIDTH, NDR_CONT_ENTRY);
	if (strcmp(action, "delayed") == 0 && rc->will_retry_until_us > 0) {
		buf_reset(&t);
		buf_printf(&t, "Delivery will be retried until %s.",
			   time_rfc5322((time_t)(rc->will_retry_until_us / 1000000), date,
					sizeof(date)));
		buf_puts(b, NDR_CONT_ENTRY);
		ndr_wrap(b, buf_str(&t), strlen(NDR_CONT_ENTRY) - 2, NDR_TEXT_WIDTH,
			 NDR_CONT_ENTRY);
	}
	buf_puts(b, "\r\n\r\n");
	buf_free(&t);
}

/* RFC 2045 6.7 (1)-(3): what quoted-printable must write as =XX. */
static bool ndr_qp_escaped(unsigned char c, bool line_end)
{
	if (c == ' ' || c == '\t')
		return line_end;
	return c < ' ' || c >= 0x7F || c == '=';
}

/* Appends in (CRLF lines) as quoted-printable, soft breaks keeping lines within 76
   characters (RFC 2045 6.7 (5)). */
static void ndr_qp(struct buf *out, const struct buf *in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < in->len; i++) {
		unsigned char c = (unsigned char)in->data[i];
		if (c == '\r' && i + 1 < in->len && in->data[i + 1] == '\n') {
			buf_puts(out, "\r\n");
			col = 0;
			i++;
			continue;
		}
		bool enc = ndr_qp_escaped(c, i + 1 == in->len || in->data[i + 1] == '\r');
		if (col + (enc ? 3 : 1) > 75) {
			buf_puts(out, "=\r\n");
			col = 0;
		}
		if (enc)
			buf_printf(out, "=%c%c", hex[c >> 4], hex[c & 15]);
		else
			buf_putc(out, (char)c);
		col += enc ? 3 : 1;
	}
}

/* The text of the first part, for people (RFC 6522 3): who writes, what happened, to whom,
   what is attached and how to ask for help. */
static void ndr_human_text(const struct ndr_report *r, struct buf *b)
{
	/* parenthesised: clang takes concatenated literals in an array for a missing comma */
	static const char *const intro[] = {
		[NDR_FAILURE] = ("Your message could not be delivered to one or more of its "
				 "recipients. The mail system has given up on the addresses below "
				 "and will not try them again."),
		[NDR_DELAY] = ("Your message has not reached one or more of its recipients yet. "
			       "The mail system is still trying, so there is no need to send it "
			       "again; you will hear from it again if it has to give up."),
		[NDR_SUCCESS] = ("Your message was delivered to the recipients below. You asked "
				 "for this confirmation when you sent it."),
	};
	static const char *const attached[] = {
		[NDR_RETURN_HEADERS] = "The header of your message is attached.",
		[NDR_RETURN_FULL] = "Your message is attached.",
	};
	const char *host = buf_str(&r->host);
	struct buf t = { 0 };

	buf_printf(&t, "This report was written automatically by the mail system at %s.", host);
	ndr_para(b, buf_str(&t));
	ndr_para(b, intro[r->p->kind]);
	for (size_t i = 0; i < r->n; i++)
		ndr_human_rcpt(r, &r->rcpts[i], b);
	buf_reset(&t);
	if (r->ret != NDR_RETURN_NONE)
		buf_printf(&t, "%s ", attached[r->ret]);
	buf_printf(&t, "If you need help, write to postmaster@%s", host);
	if (r->p->queue_id != NULL && r->p->queue_id[0] != '\0') {
		buf_puts(&t, " and quote queue ID ");
		ndr_clean(&t, r->p->queue_id, false);
	}
	buf_putc(&t, '.');
	ndr_wrap(b, buf_str(&t), 0, NDR_TEXT_WIDTH, NDR_CONT_PARA);
	buf_puts(b, "\r\n");
	buf_free(&t);
}

/* The first part as written. UTF-8 in it (addresses, replies) goes quoted-printable, so
   that the report is 8-bit only when the message it returns is. */
static void ndr_human_part(struct ndr_report *r)
{
	struct buf text = { 0 };

	ndr_human_text(r, &text);
	r->human_qp = ndr_has_8bit(&text);
	buf_reset(&r->human);
	if (r->human_qp)
		ndr_qp(&r->human, &text);
	else
		buf_append(&r->human, text.data, text.len);
	buf_free(&text);
}

/* Reads the original's bytes [pos, min(end, pos + NDR_CHUNK)) into out. Returns 0, or -1
   when pread failed or the file ends before content_size says it should. */
static int ndr_read(const struct ndr_src *src, uint64_t pos, uint64_t end, char *out, size_t *n_r)
{
	size_t want = end - pos < NDR_CHUNK ? (size_t)(end - pos) : NDR_CHUNK, got = 0;

	while (got < want) {
		ssize_t r = pread(src->fd, out + got, want - got, src->off + (off_t)(pos + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	*n_r = got;
	return 0;
}

/* A line ends; an empty one ends the header (RFC 5322 2.1). */
static void ndr_scan_line_end(struct ndr_scan *s)
{
	if (!s->hdr_done && s->line_len == 0) {
		s->hdr_done = true;
		s->hdr_len = s->line_start;
	}
	s->line_len = 0;
}

/* Notes one byte of the original: where the header ends, 8-bit data, and what could not be
   returned unchanged in a 8bit part (RFC 2045 2.8: no NUL, lines of at most 998 octets). */
static void ndr_scan_byte(struct ndr_scan *s, unsigned char c)
{
	bool pair = c == '\n' && s->after_cr;

	s->pos++;
	s->after_cr = c == '\r';
	if (c == '\r' || c == '\n') {
		if (!pair)
			ndr_scan_line_end(s);
		s->line_start = s->pos;
		return;
	}
	if (c >= 0x80)
		*(s->hdr_done ? &s->body_8bit : &s->hdr_8bit) = true;
	if (c == '\0' || ++s->line_len > NDR_LINE_MAX)
		*(s->hdr_done ? &s->body_unfit : &s->hdr_unfit) = true;
}

/* Reads the original (only up to the end of its header unless whole) into *s and looks for
   the boundary in it, chunk tails kept so that a match across two chunks is found. Returns
   1 when the boundary occurs, 0 when not, -1 when reading failed. */
static int ndr_scan_run(const struct ndr_src *src, bool whole, const char *boundary,
			struct ndr_scan *s)
{
	size_t blen = strlen(boundary), keep = 0, n;
	char *chunk = xmalloc(NDR_CHUNK + blen);
	int rc = 0;

	memset(s, 0, sizeof(*s));
	while (rc == 0 && s->pos < src->size && (whole || !s->hdr_done)) {
		if (ndr_read(src, s->pos, src->size, chunk + keep, &n) < 0) {
			rc = -1;
			break;
		}
		if (memmem(chunk, keep + n, boundary, blen) != NULL)
			rc = 1;
		for (size_t i = 0; i < n && (whole || !s->hdr_done); i++)
			ndr_scan_byte(s, (unsigned char)chunk[keep + i]);
		size_t tail = keep + n < blen - 1 ? keep + n : blen - 1;
		memmove(chunk, chunk + keep + n - tail, tail);
		keep = tail;
	}
	if (!s->hdr_done)
		s->hdr_len = s->pos;
	free(chunk);
	return rc;
}

/* RFC 3461 6.2 and 4.3: failures return what RET asks for, or without RET the whole message
   when it is small; other reports return only the header. */
static enum ndr_return ndr_return_wanted(const struct ndr_params *p, uint64_t size)
{
	if (size == 0)
		return NDR_RETURN_NONE;
	if (p->kind != NDR_FAILURE)
		return NDR_RETURN_HEADERS;
	if (p->ret != NULL && strcasecmp(p->ret, "FULL") == 0)
		return NDR_RETURN_FULL;
	if (p->ret != NULL && strcasecmp(p->ret, "HDRS") == 0)
		return NDR_RETURN_HEADERS;
	return size <= NDR_RETURN_FULL_MAX ? NDR_RETURN_FULL : NDR_RETURN_HEADERS;
}

/* Content that no 8bit part can carry unchanged is left out rather than altered: the
   message falls back to its header, an unfit or empty header to nothing. */
static enum ndr_return ndr_return_fit(enum ndr_return want, const struct ndr_scan *s)
{
	if (want == NDR_RETURN_NONE || s->hdr_unfit)
		return NDR_RETURN_NONE;
	if (want == NDR_RETURN_FULL && !s->body_unfit)
		return NDR_RETURN_FULL;
	return s->hdr_len > 0 ? NDR_RETURN_HEADERS : NDR_RETURN_NONE;
}

/* 64 random bits; without getrandom the time still makes each try differ, and every
   candidate is checked anyway. */
static uint64_t ndr_random64(unsigned attempt)
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) == (ssize_t)sizeof(r))
		return r;
	return (uint64_t)time_now_us() * UINT64_C(0x9E3779B97F4A7C15) + attempt;
}

/* The first candidate is the queue ID and the report's time, which ordinary content never
   contains and which a test can predict; later ones add random bits, so that an original
   holding the first (by chance or design) cannot make the report ambiguous. Only letters,
   digits, '.' and '/' are used (RFC 2046 5.1.1 bchars). */
static void ndr_boundary_make(const struct ndr_params *p, unsigned attempt, char *out, size_t len)
{
	char qid[NDR_QID_MAX + 1];
	size_t n = 0;

	for (const char *q = p->queue_id != NULL ? p->queue_id : ""; *q != '\0'; q++)
		if (isalnum((unsigned char)*q) && n < NDR_QID_MAX)
			qid[n++] = *q;
	qid[n] = '\0';
	if (attempt == 0)
		snprintf(out, len, "%s.%016" PRIx64 "/report", qid, (uint64_t)p->now_us);
	else
		snprintf(out, len, "%s.%016" PRIx64 "/%016" PRIx64, qid, (uint64_t)p->now_us,
			 ndr_random64(attempt));
}

static bool ndr_contains(const struct buf *b, const char *s)
{
	return b->len > 0 && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* Scans the original and builds both text parts with a boundary that occurs in none of
   them. Returns 0, or -1 when reading failed or every candidate clashed. */
static int ndr_prepare(struct ndr_report *r)
{
	enum ndr_return want = ndr_return_wanted(r->p, r->src.size);

	ndr_status_part(r);
	for (unsigned i = 0; i < NDR_BOUNDARY_TRIES; i++) {
		ndr_boundary_make(r->p, i, r->boundary, sizeof(r->boundary));
		int found = want == NDR_RETURN_NONE ? 0 :
			ndr_scan_run(&r->src, want == NDR_RETURN_FULL, r->boundary, &r->scan);
		if (found < 0)
			return -1;
		if (found > 0 || ndr_contains(&r->status, r->boundary))
			continue;
		r->ret = ndr_return_fit(want, &r->scan);
		ndr_human_part(r);
		if (!ndr_contains(&r->human, r->boundary))
			return 0;
	}
	return -1;
}

/* Rewrites line ends as CRLF, the only form MIME allows inside message/rfc822 and
   text/rfc822-headers; out has room for 2 * n bytes. Returns the bytes written. */
static size_t ndr_crlf(const char *in, size_t n, char *out, bool *after_cr)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '\n' && *after_cr) {
			*after_cr = false;
			continue;
		}
		*after_cr = c == '\r';
		if (c == '\r' || c == '\n') {
			out[m++] = '\r';
			out[m++] = '\n';
		} else {
			out[m++] = c;
		}
	}
	return m;
}

/* Streams the first len bytes of the original, a chunk at a time. */
static int ndr_copy(const struct ndr_report *r, uint64_t len)
{
	char *in = xmalloc(NDR_CHUNK), *out = xmalloc(2 * NDR_CHUNK);
	bool after_cr = false;
	int rc = 0;
	size_t n;

	for (uint64_t pos = 0; rc == 0 && pos < len; pos += n) {
		if (ndr_read(&r->src, pos, len, in, &n) < 0)
			rc = -1;
		else if (r->write(r->arg, out, ndr_crlf(in, n, out, &after_cr)) != 0)
			rc = -1;
	}
	free(in);
	free(out);
	return rc;
}

/* The MIME header of the part returning the original. An 8-bit header means an
   internationalised message, returned as RFC 6533's message/global(-headers); 8-bit data
   elsewhere travels as 8bit, allowed for message/rfc822 (RFC 2046 5.2.1). */
static void ndr_original_header(const struct ndr_report *r, struct buf *b)
{
	bool full = r->ret == NDR_RETURN_FULL, intl = r->scan.hdr_8bit;

	buf_printf(b, "\r\n--%s\r\nContent-Type: ", r->boundary);
	if (full)
		buf_puts(b, intl ? "message/global\r\n" : "message/rfc822\r\n");
	else
		buf_puts(b, intl ? "message/global-headers\r\n" : "text/rfc822-headers\r\n");
	buf_printf(b, "Content-Description: %s\r\n", full ? "Returned message" : "Returned header");
	if (intl || (full && r->scan.body_8bit))
		buf_puts(b, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(b, "\r\n");
}

/* RFC 2045 6.4: a multipart is labelled 8bit when any of its parts is, and only the
   returned message can be. */
static bool ndr_report_8bit(const struct ndr_report *r)
{
	if (r->ret == NDR_RETURN_NONE)
		return false;
	return r->scan.hdr_8bit || (r->ret == NDR_RETURN_FULL && r->scan.body_8bit);
}

/* The report's own header (RFC 3464 2, RFC 3834 5 for Auto-Submitted) and a preamble for
   readers without MIME. */
static void ndr_top_header(const struct ndr_report *r, struct buf *b)
{
	static const char *const subject[] = {
		[NDR_FAILURE] = "Undelivered Mail Returned to Sender",
		[NDR_DELAY] = "Delayed Mail (still being retried)",
		[NDR_SUCCESS] = "Successful Mail Delivery Report",
	};
	const struct ndr_params *p = r->p;

	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <", buf_str(&r->host));
	ndr_clean(b, p->to, true);
	buf_printf(b, ">\r\nSubject: %s\r\n", subject[p->kind]);
	ndr_date_field(b, "Date", p->now_us);
	if (p->message_id != NULL && p->message_id[0] != '\0') {
		buf_puts(b, "Message-ID: <");
		ndr_clean(b, p->message_id, false);
		buf_puts(b, ">\r\n");
	}
	buf_printf(b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
		   "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		   "\tboundary=\"%s\"\r\n", r->boundary);
	if (ndr_report_8bit(r))
		buf_puts(b, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(b, "\r\nThis is a delivery status notification in MIME format.\r\n");
}

/* The human-readable and the message/delivery-status parts (RFC 6522 3). */
static void ndr_text_parts(const struct ndr_report *r, struct buf *b)
{
	buf_printf(b, "\r\n--%s\r\nContent-Type: text/plain; charset=%s\r\n", r->boundary,
		   r->human_qp ? "utf-8" : "us-ascii");
	if (r->human_qp)
		buf_puts(b, "Content-Transfer-Encoding: quoted-printable\r\n");
	buf_puts(b, "Content-Description: Notification\r\n\r\n");
	buf_append(b, r->human.data, r->human.len);
	buf_printf(b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n"
		   "Content-Description: Delivery report\r\n\r\n", r->boundary);
	buf_append(b, r->status.data, r->status.len);
}

/* Writes the report: everything but the original from memory, the original streamed. */
static int ndr_emit(const struct ndr_report *r)
{
	struct buf b = { 0 };
	int rc;

	ndr_top_header(r, &b);
	ndr_text_parts(r, &b);
	if (r->ret != NDR_RETURN_NONE)
		ndr_original_header(r, &b);
	rc = r->write(r->arg, b.data, b.len) != 0 ? -1 : 0;
	if (rc == 0 && r->ret != NDR_RETURN_NONE)
		rc = ndr_copy(r, r->ret == NDR_RETURN_FULL ? r->src.size : r->scan.hdr_len);
	buf_reset(&b);
	buf_printf(&b, "\r\n--%s--\r\n", r->boundary);
	if (rc == 0 && r->write(r->arg, b.data, b.len) != 0)
		rc = -1;
	buf_free(&b);
	return rc;
}

static bool ndr_args_ok(const struct ndr_params *p, const struct ndr_rcpt *rcpts, size_t n,
			ndr_write_fn *write_fn)
{
	if (p == NULL || rcpts == NULL || n == 0 || write_fn == NULL)
		return false;
	if ((unsigned)p->kind > NDR_SUCCESS || p->reporting_mta == NULL)
		return false;
	if (p->to == NULL || p->to[0] == '\0')
		return false;
	for (size_t i = 0; i < n; i++)
		if (rcpts[i].address == NULL || rcpts[i].address[0] == '\0')
			return false;
	return true;
}

int ndr_compose(const struct ndr_params *p, const struct ndr_rcpt *rcpts, size_t n, int fd,
		off_t content_off, uint64_t content_size, ndr_write_fn *write_fn, void *arg)
{
	struct ndr_report r = { .p = p, .rcpts = rcpts, .n = n, .write = write_fn, .arg = arg,
				.src = { fd, content_off, content_size } };
	int rc = -1;

	if (!ndr_args_ok(p, rcpts, n, write_fn))
		return -1;
	ndr_clean(&r.host, p->reporting_mta, false);
	if (r.host.len > 0 && ndr_prepare(&r) == 0)
		rc = ndr_emit(&r);
	buf_free(&r.host);
	buf_free(&r.human);
	buf_free(&r.status);
	return rc;
}
