#include "route/nexthop.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route/pattern.h"
#include "util/xalloc.h"

#define NEXTHOP_PATH_MAX 4095 /* PATH_MAX less its NUL */
#define NEXTHOP_URL_MAX 2048

static const char *const nexthop_names[NEXTHOP_NKINDS] = {
	[NEXTHOP_SMTP] = "smtp",         [NEXTHOP_MX] = "mx",
	[NEXTHOP_LMTP_INET] = "lmtp",    [NEXTHOP_LMTP_UNIX] = "lmtp",
	[NEXTHOP_PIPE] = "pipe",         [NEXTHOP_MDA] = "mda",
	[NEXTHOP_MAILDIR] = "maildir",   [NEXTHOP_WEBHOOK] = "webhook",
	[NEXTHOP_DISCARD] = "discard",   [NEXTHOP_ERROR] = "error",
	[NEXTHOP_HOLD] = "hold",         [NEXTHOP_VACATION] = "vacation",
	[NEXTHOP_MASK] = "mask",         [NEXTHOP_BOUNCE] = "bounce",
};

static bool nexthop_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *nexthop_skip_blanks(const char *s)
{
	while (nexthop_blank(*s))
		s++;
	return s;
}

static int nexthop_fail(const char **error_r, const char *error)
{
	*error_r = error;
	return -1;
}

const char *nexthop_kind_name(enum nexthop_kind kind)
{
	return kind < NEXTHOP_NKINDS ? nexthop_names[kind] : "?";
}

int nexthop_kind_of(const char *text, enum nexthop_kind *kind_r)
{
	const char *colon = strchr(text, ':');
	size_t n = colon != NULL ? (size_t)(colon - text) : 0;

	for (int k = 0; colon != NULL && k < NEXTHOP_NKINDS; k++) {
		if (strlen(nexthop_names[k]) != n || strncasecmp(text, nexthop_names[k], n) != 0)
			continue;
		if (k == NEXTHOP_LMTP_INET && strncasecmp(colon + 1, "unix:", 5) == 0)
			k = NEXTHOP_LMTP_UNIX;
		*kind_r = (enum nexthop_kind)k;
		return 0;
	}
	return -1;
}

/* ---- hosts ---- */

static int nexthop_port(const char *s, size_t n, unsigned *port_r, const char **error_r)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return nexthop_fail(error_r, "bad port");
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return nexthop_fail(error_r, "bad port");
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return nexthop_fail(error_r, "port out of range (1-65535)");
	*port_r = v;
	return 0;
}

static bool nexthop_hostname(const char *h)
{
	for (const char *p = h; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	return pattern_domain_valid(h, strlen(h));
}

static bool nexthop_ip(int af, const char *s)
{
	unsigned char a[16];

	return inet_pton(af, s, a) == 1;
}

static int nexthop_host_copy(struct nexthop_host *h, const char *s, size_t n,
			     const char **error_r)
{
	if (n == 0)
		return nexthop_fail(error_r, "empty host");
	if (n >= sizeof(h->host))
		return nexthop_fail(error_r, "host name too long");
	memcpy(h->host, s, n);
	h->host[n] = '\0';
	return 0;
}

/* "[host]", "[host]:port", "[2001:db8::1]:port" or "[IPv6:2001:db8::1]". */
static int nexthop_bracketed(const char *s, size_t n, struct nexthop_host *h,
			     const char **error_r)
{
	const char *close = memchr(s, ']', n), *inner = s + 1;
	size_t ilen, after;

	if (close == NULL)
		return nexthop_fail(error_r, "missing ']'");
	ilen = (size_t)(close - inner);
	if (ilen >= 5 && strncasecmp(inner, "ipv6:", 5) == 0) {
		inner += 5;
		ilen -= 5;
		h->ipv6 = true;
	}
	h->ipv6 = h->ipv6 || memchr(inner, ':', ilen) != NULL;
	h->bracketed = true;
	if (nexthop_host_copy(h, inner, ilen, error_r) < 0)
		return -1;
	if (h->ipv6 ? !nexthop_ip(AF_INET6, h->host)
		    : !nexthop_ip(AF_INET, h->host) && !nexthop_hostname(h->host))
		return nexthop_fail(error_r, h->ipv6 ? "bad IPv6 address" : "bad host name");
	after = n - (size_t)(close + 1 - s);
	if (after == 0)
		return 0;
	if (close[1] != ':')
		return nexthop_fail(error_r, "junk after ']'");
	return nexthop_port(close + 2, after - 1, &h->port, error_r);
}

/* One host of s (n bytes): bracketed, or "host" or "host:port". */
static int nexthop_host(const char *s, size_t n, struct nexthop_host *h, const char **error_r)
{
	const char *colon = memchr(s, ':', n);
	size_t hlen = colon != NULL ? (size_t)(colon - s) : n;

	memset(h, 0, sizeof(*h));
	if (n > 0 && s[0] == '[')
		return nexthop_bracketed(s, n, h, error_r);
	if (colon != NULL && memchr(colon + 1, ':', n - hlen - 1) != NULL)
		return nexthop_fail(error_r, "an IPv6 address must be in brackets");
	if (nexthop_host_copy(h, s, hlen, error_r) < 0)
		return -1;
	if (!nexthop_ip(AF_INET, h->host) && !nexthop_hostname(h->host))
		return nexthop_fail(error_r, "bad host name");
	return colon != NULL ? nexthop_port(colon + 1, n - hlen - 1, &h->port, error_r) : 0;
}

static int nexthop_smtp(const char *arg, struct nexthop *hop, const char **error_r)
{
	size_t count = 1;

	if (arg[0] == '\0')
		return nexthop_fail(error_r, "smtp: needs a host");
	for (const char *s = arg; (s = strchr(s, ',')) != NULL; s++)
		count++;
	if (count > NEXTHOP_HOSTS_MAX)
		return nexthop_fail(error_r, "too many hosts (the limit is 32)");
	hop->hosts = xcalloc(count, sizeof(*hop->hosts));
	for (const char *s = arg;; s++) {
		size_t n = strcspn(s, ",");
		if (nexthop_host(s, n, &hop->hosts[hop->nhosts++], error_r) < 0)
			return -1;
		s += n;
		if (*s == '\0')
			return 0;
	}
}

static int nexthop_mx(const char *arg, struct nexthop *hop, const char **error_r)
{
	if (arg[0] == '\0')
		return 0;
	hop->hosts = xcalloc(1, sizeof(*hop->hosts));
	hop->nhosts = 1;
	if (nexthop_host(arg, strlen(arg), hop->hosts, error_r) < 0)
		return -1;
	if (hop->hosts->bracketed || nexthop_ip(AF_INET, hop->hosts->host))
		return nexthop_fail(error_r, "mx: takes a domain, not an address or [host]");
	return 0;
}

/* ---- paths and URLs ---- */

static int nexthop_abs_path(const char *s, size_t max, char **path_r, const char **error_r)
{
	if (s[0] != '/')
		return nexthop_fail(error_r, "path must be absolute");
	if (strlen(s) > max)
		return nexthop_fail(error_r, "path too long");
	*path_r = xstrdup(s);
	return 0;
}

static int nexthop_lmtp(const char *arg, struct nexthop *hop, const char **error_r)
{
	if (hop->kind == NEXTHOP_LMTP_UNIX)
		return nexthop_abs_path(arg + 5, NEXTHOP_UNIX_PATH_MAX, &hop->path, error_r);
	if (strncasecmp(arg, "inet:", 5) == 0)
		arg += 5;
	hop->hosts = xcalloc(1, sizeof(*hop->hosts));
	hop->nhosts = 1;
	return nexthop_host(arg, strlen(arg), hop->hosts, error_r);
}

static bool nexthop_url_char(char c, const char *extra)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL) ||
	       (c != '\0' && strchr(extra, c) != NULL);
}

static bool nexthop_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Whether s (n bytes) holds only URL characters of RFC 3986 (unreserved, sub-delims, extra)
   and well-formed %XX escapes. */
static bool nexthop_url_part(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n || !nexthop_hex(s[i + 1]) || !nexthop_hex(s[i + 2]))
				return false;
			i += 2;
		} else if (!nexthop_url_char(s[i], extra)) {
			return false;
		}
	}
	return true;
}

/* http:// or https://, [userinfo@]host[:port], then an optional path and query. */
static int nexthop_webhook(const char *arg, struct nexthop *hop, const char **error_r)
{
	size_t scheme = strncasecmp(arg, "https://", 8) == 0 ? 8
			: strncasecmp(arg, "http://", 7) == 0 ? 7 : 0;
	const char *auth = arg + scheme, *at;
	size_t alen = strcspn(auth, "/?");
	struct nexthop_host h;

	if (scheme == 0)
		return nexthop_fail(error_r, "webhook: needs an http:// or https:// URL");
	if (strlen(arg) > NEXTHOP_URL_MAX)
		return nexthop_fail(error_r, "URL too long");
	at = memrchr(auth, '@', alen);
	if (at != NULL && !nexthop_url_part(auth, (size_t)(at - auth), ":"))
		return nexthop_fail(error_r, "bad user information in URL");
	if (at != NULL) {
		alen -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	if (nexthop_host(auth, alen, &h, error_r) < 0)
		return -1;
	if (!nexthop_url_part(auth + alen, strlen(auth + alen), ":@/?"))
		return nexthop_fail(error_r, "bad character in URL path or query");
	hop->url = xstrdup(arg);
	return 0;
}

/* ---- argv ---- */

/* Appends the quoted part at *sp ('...' literal, "..." with \" and \\) to word. */
static int nexthop_quoted(const char **sp, struct buf *word, const char **error_r)
{
	const char *s = *sp;
	char q = *s++;

	while (*s != '\0' && *s != q) {
		if (q == '"' && s[0] == '\\' && (s[1] == '"' || s[1] == '\\'))
			s++;
		buf_putc(word, *s++);
	}
	if (*s == '\0')
		return nexthop_fail(error_r, q == '"' ? "unterminated \" quote" : "unterminated ' quote");
	*sp = s + 1;
	return 0;
}

/* Reads the word at *sp, quotes removed. Returns 0, or -1 for an unterminated quote. */
static int nexthop_word(const char **sp, struct buf *word, const char **error_r)
{
	const char *s = *sp;

	buf_reset(word);
	while (*s != '\0' && !nexthop_blank(*s)) {
		if (*s == '\'' || *s == '"') {
			if (nexthop_quoted(&s, word, error_r) < 0)
				return -1;
		} else {
			buf_putc(word, *s++);
		}
	}
	*sp = s;
	return 0;
}

static int nexthop_words(const char *s, struct nexthop *hop, const char **error_r)
{
	struct buf word = { 0 };
	int ret = 0;

	hop->argv = xcalloc(NEXTHOP_ARGV_MAX + 1, sizeof(*hop->argv));
	for (s = nexthop_skip_blanks(s); *s != '\0' && ret == 0; s = nexthop_skip_blanks(s)) {
		if (hop->argc == NEXTHOP_ARGV_MAX)
			ret = nexthop_fail(error_r, "too many arguments (the limit is 64)");
		else if ((ret = nexthop_word(&s, &word, error_r)) == 0)
			hop->argv[hop->argc++] = xstrdup(buf_str(&word));
	}
	buf_free(&word);
	if (ret == 0 && hop->argc == 0)
		ret = nexthop_fail(error_r, "needs a program");
	if (ret == 0 && hop->argv[0][0] != '/')
		ret = nexthop_fail(error_r, "the program must be an absolute path");
	if (ret == 0)
		hop->argv = xrealloc(hop->argv, (hop->argc + 1) * sizeof(*hop->argv));
	return ret;
}

/* ---- texts ---- */

static int nexthop_text(const char *s, char **text_r, const char **error_r)
{
	s = nexthop_skip_blanks(s);
	if (strlen(s) > NEXTHOP_TEXT_MAX)
		return nexthop_fail(error_r, "text too long (the limit is 400 bytes)");
	*text_r = s[0] != '\0' ? xstrdup(s) : NULL;
	return 0;
}

static bool nexthop_digits(const char *s, size_t min, size_t max, size_t *n_r)
{
	size_t n = 0;

	while (n <= max && s[n] >= '0' && s[n] <= '9')
		n++;
	*n_r = n;
	return n >= min && n <= max;
}

/* "c.s.d" (RFC 3463) followed by a blank or the end; its class must be the code's. */
static int nexthop_status(const char **sp, struct nexthop *hop, const char **error_r)
{
	const char *s = *sp;
	size_t n1, n2;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return nexthop_fail(error_r, "bad enhanced status code");
	if (s[1] != '.' || !nexthop_digits(s + 2, 1, 3, &n1) || s[2 + n1] != '.' ||
	    !nexthop_digits(s + 3 + n1, 1, 3, &n2) ||
	    (s[3 + n1 + n2] != '\0' && !nexthop_blank(s[3 + n1 + n2])))
		return nexthop_fail(error_r, "bad enhanced status code");
	if ((unsigned)(s[0] - '0') != hop->code / 100)
		return nexthop_fail(error_r, "enhanced status class does not match the reply code");
	memcpy(hop->status, s, 3 + n1 + n2);
	hop->status[3 + n1 + n2] = '\0';
	*sp = s + 3 + n1 + n2;
	return 0;
}

static int nexthop_error(const char *s, struct nexthop *hop, const char **error_r)
{
	size_t n;

	if (!nexthop_digits(s, 3, 3, &n) || (s[3] != '\0' && !nexthop_blank(s[3])))
		return nexthop_fail(error_r, "error: needs a 3-digit reply code");
	hop->code = (unsigned)strtoul(s, NULL, 10);
	if (hop->code < 400 || hop->code > 599)
		return nexthop_fail(error_r, "the reply code must be 4xx or 5xx");
	s = nexthop_skip_blanks(s + 3);
	if (s[0] >= '0' && s[0] <= '9' && s[1] == '.' && nexthop_status(&s, hop, error_r) < 0)
		return -1;
	if (nexthop_text(s, &hop->text, error_r) < 0)
		return -1;
	if (hop->text == NULL)
		hop->text = xstrdup(hop->code >= 500 ? "delivery refused by the transport policy"
						     : "delivery deferred by the transport policy");
	return 0;
}

/* ---- parse and format ---- */

/* Kinds whose argument is one word; the rest hold free text or argv. */
static bool nexthop_one_word(enum nexthop_kind kind)
{
	switch (kind) {
	case NEXTHOP_SMTP:
	case NEXTHOP_MX:
	case NEXTHOP_LMTP_INET:
	case NEXTHOP_LMTP_UNIX:
	case NEXTHOP_MAILDIR:
	case NEXTHOP_WEBHOOK:
		return true;
	default:
		return false;
	}
}

static int nexthop_dispatch(const char *arg, struct nexthop *hop, const char **error_r)
{
	switch (hop->kind) {
	case NEXTHOP_SMTP:
		return nexthop_smtp(arg, hop, error_r);
	case NEXTHOP_MX:
		return nexthop_mx(arg, hop, error_r);
	case NEXTHOP_LMTP_INET:
	case NEXTHOP_LMTP_UNIX:
		return nexthop_lmtp(arg, hop, error_r);
	case NEXTHOP_PIPE:
	case NEXTHOP_MDA:
		return nexthop_words(arg, hop, error_r);
	case NEXTHOP_MAILDIR:
		return nexthop_abs_path(arg, NEXTHOP_PATH_MAX, &hop->path, error_r);
	case NEXTHOP_WEBHOOK:
		return nexthop_webhook(arg, hop, error_r);
	case NEXTHOP_ERROR:
		return nexthop_error(arg, hop, error_r);
	case NEXTHOP_DISCARD:
	case NEXTHOP_HOLD:
	case NEXTHOP_VACATION:
	case NEXTHOP_MASK:
	case NEXTHOP_BOUNCE:
	case NEXTHOP_NKINDS:
		break;
	}
	return nexthop_text(arg, &hop->text, error_r);
}

static bool nexthop_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return true;
	return false;
}

int nexthop_parse(const char *text, struct nexthop *hop_r, const char **error_r)
{
	const char *arg = strchr(text, ':');
	char *word = NULL;
	int ret;

	memset(hop_r, 0, sizeof(*hop_r));
	if (nexthop_kind_of(text, &hop_r->kind) < 0)
		return nexthop_fail(error_r, "unknown next hop kind");
	if (nexthop_has_control(text))
		return nexthop_fail(error_r, "control character in next hop");
	arg++;
	if (nexthop_one_word(hop_r->kind)) {
		size_t n = strcspn(arg, " \t");
		if (*nexthop_skip_blanks(arg + n) != '\0')
			return nexthop_fail(error_r, "unexpected text after the next hop");
		arg = word = xstrndup(arg, n);
	}
	ret = nexthop_dispatch(arg, hop_r, error_r);
	free(word);
	if (ret < 0)
		nexthop_clear(hop_r);
	return ret;
}

static void nexthop_format_host(const struct nexthop_host *h, struct buf *out)
{
	if (h->bracketed || h->ipv6)
		buf_printf(out, "[%s]", h->host);
	else
		buf_puts(out, h->host);
	if (h->port != 0)
		buf_printf(out, ":%u", h->port);
}

static void nexthop_format_word(const char *w, struct buf *out)
{
	if (w[0] != '\0' && strpbrk(w, " \t'\"") == NULL) {
		buf_puts(out, w);
	} else if (strchr(w, '\'') == NULL) {
		buf_printf(out, "'%s'", w);
	} else {
		buf_putc(out, '"');
		for (; *w != '\0'; w++) {
			if (*w == '"' || *w == '\\')
				buf_putc(out, '\\');
			buf_putc(out, *w);
		}
		buf_putc(out, '"');
	}
}

static void nexthop_format_arg(const struct nexthop *hop, struct buf *out)
{
	switch (hop->kind) {
	case NEXTHOP_SMTP:
	case NEXTHOP_MX:
	case NEXTHOP_LMTP_INET:
		for (size_t i = 0; i < hop->nhosts; i++) {
			if (i > 0)
				buf_putc(out, ',');
			nexthop_format_host(&hop->hosts[i], out);
		}
		return;
	case NEXTHOP_PIPE:
	case NEXTHOP_MDA:
		for (size_t i = 0; i < hop->argc; i++) {
			if (i > 0)
				buf_putc(out, ' ');
			nexthop_format_word(hop->argv[i], out);
		}
		return;
	case NEXTHOP_ERROR:
		buf_printf(out, "%u%s%s ", hop->code, hop->status[0] ? " " : "", hop->status);
		break;
	default:
		break;
	}
	buf_puts(out, hop->path ? hop->path : hop->url ? hop->url : hop->text ? hop->text : "");
}

void nexthop_format(const struct nexthop *hop, struct buf *out)
{
	buf_printf(out, "%s:", nexthop_kind_name(hop->kind));
	if (hop->kind == NEXTHOP_LMTP_INET)
		buf_puts(out, "inet:");
	else if (hop->kind == NEXTHOP_LMTP_UNIX)
		buf_puts(out, "unix:");
	nexthop_format_arg(hop, out);
}

void nexthop_clear(struct nexthop *hop)
{
	for (size_t i = 0; i < hop->argc; i++)
		free(hop->argv[i]);
	free(hop->argv);
	free(hop->hosts);
	free(hop->path);
	free(hop->url);
	free(hop->text);
	memset(hop, 0, sizeof(*hop));
}
