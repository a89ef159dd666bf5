/* Replies from the peer: multi-line assembly (RFC 5321 4.2.1), enhanced status codes
   (RFC 2034/3463) and the EHLO keywords the client uses. No I/O here. */
#include "deliver/smtp_client_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_client_reply_reset(struct smtp_client_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Reads "d.ddd.ddd" at s; returns its length when it is followed by a space or the end. */
static size_t reply_parse_esc(const char *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 3; part++) {
		size_t start = i;
		while (i < len && isdigit((unsigned char)s[i]) && i - start < 3)
			i++;
		if (i == start || (part == 0 && i - start != 1))
			return 0;
		if (part < 2) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == len || s[i] == ' ' ? i : 0;
}

/* The enhanced code counts only when its class agrees with the reply code: "250 5.1.1" is a
   broken server, and its 250 is what the protocol goes by. */
static void reply_take_esc(struct smtp_client_reply *r, const char *s, size_t len)
{
	size_t n = reply_parse_esc(s, len);
	if (n == 0 || n >= sizeof(r->dsn) || s[0] != '0' + r->code / 100 || strchr("245", s[0]) == NULL)
		return;
	memcpy(r->dsn, s, n);
	r->dsn[n] = '\0';
	r->has_dsn = true;
}

static bool reply_keyword(const char *s, size_t len, const char *kw)
{
	size_t n = strlen(kw);
	return len >= n && strncasecmp(s, kw, n) == 0 && (len == n || s[n] == ' ');
}

/* One EHLO line after the first: "SIZE 10240000", "PIPELINING" and so on. */
static void reply_take_keyword(struct smtp_client_ext *ext, const char *s, size_t len)
{
	if (reply_keyword(s, len, "PIPELINING"))
		ext->pipelining = true;
	else if (reply_keyword(s, len, "8BITMIME"))
		ext->eightbitmime = true;
	else if (reply_keyword(s, len, "SMTPUTF8"))
		ext->smtputf8 = true;
	else if (reply_keyword(s, len, "DSN"))
		ext->dsn = true;
	else if (reply_keyword(s, len, "STARTTLS"))
		ext->starttls = true;
	else if (reply_keyword(s, len, "SIZE")) {
		ext->size = true;
		char num[24] = "";
		if (len > 5 && len - 5 < sizeof(num)) {
			memcpy(num, s + 5, len - 5);
			num[len - 5] = '\0';
		}
		char *end;
		unsigned long long v = strtoull(num, &end, 10);
		ext->size_max = isdigit((unsigned char)num[0]) && *end == '\0' ? v : 0;
	}
}

/* Control characters in a reply would end up in logs and reports: they become spaces. */
static void reply_append_text(struct smtp_client_reply *r, const char *line, size_t len)
{
	if (r->len > 0 && r->len + 1 < sizeof(r->text))
		r->text[r->len++] = ' ';
	for (size_t i = 0; i < len && r->len + 1 < sizeof(r->text); i++) {
		unsigned char ch = (unsigned char)line[i];
		r->text[r->len++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	r->text[r->len] = '\0';
}

int smtp_client_reply_line(struct smtp_client_reply *r, const char *line, size_t len)
{
	if (r->done)
		smtp_client_reply_reset(r);
	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5' ||
	    (len > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->lines > 0 && code != r->code)
		return -1;
	r->code = code;
	reply_append_text(r, line, len);
	const char *rest = len > 4 ? line + 4 : "";
	size_t rlen = len > 4 ? len - 4 : 0;
	if (r->lines++ == 0)
		reply_take_esc(r, rest, rlen);
	else
		reply_take_keyword(&r->ext, rest, rlen);
	r->done = len == 3 || line[3] == ' ';
	return r->done ? 1 : 0;
}

const char *smtp_client_reply_dsn(const struct smtp_client_reply *r)
{
	if (r->has_dsn)
		return r->dsn;
	switch (r->code / 100) {
	case 2:
		return "2.0.0";
	case 5:
		return "5.0.0";
	default:
		return "4.0.0";
	}
}

enum delivery_status smtp_client_reply_status(int code)
{
	if (code / 100 == 2)
		return DELIVERY_DONE;
	if (code / 100 == 5)
		return DELIVERY_BOUNCE;
	return DELIVERY_DEFER;
}
