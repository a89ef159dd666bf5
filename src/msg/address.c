#include "msg/address.h"

#include <arpa/inet.h>
#include <string.h>

/* Envelope addresses per RFC 5321 4.1.2 (Path, Mailbox, address literals) and RFC 6531 3.3
   (UTF-8 in atoms, quoted strings and sub-domains). The parser works in place on the caller's
   string and writes only into struct address, so it never allocates. */

/* Where we are in the input, the caller's options, the flags found so far and the first
   error, shared by the helpers so that each stays a small grammar rule. */
struct parser {
	const char *p;
	unsigned opts;
	unsigned flags;
	const char *error;
};

static int fail(struct parser *ps, const char *error)
{
	if (ps->error == NULL)
		ps->error = error;
	return -1;
}

/* Own ASCII classes: <ctype.h> depends on the locale, the grammar does not. */
static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Printable ASCII but '[', '\\' and ']' (dcontent of a General-address-literal). */
static bool is_dcontent(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '[' && c != '\\' && c != ']';
}

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

/* Returns the length of the well-formed UTF-8 character at s, or 0. The second-byte ranges
   exclude overlong forms, surrogates (ED A0..BF) and code points above U+10FFFF (RFC 3629 4). */
static size_t utf8_char_len(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		n = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		n = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xE0)
		lo = 0xA0;
	else if (s[0] == 0xED)
		hi = 0x9F;
	else if (s[0] == 0xF0)
		lo = 0x90;
	else if (s[0] == 0xF4)
		hi = 0x8F;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

bool address_utf8_valid(const char *s, unsigned long len)
{
	const unsigned char *u = (const unsigned char *)s;

	for (unsigned long i = 0; i < len;) {
		size_t n = utf8_char_len(u + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* Consumes one non-ASCII character. Validity is checked before permission so that a client
   sending garbage hears "invalid UTF-8", not a hint to try SMTPUTF8. */
static int take_utf8(struct parser *ps)
{
	size_t n = utf8_char_len((const unsigned char *)ps->p, strnlen(ps->p, 4));

	if (n == 0)
		return fail(ps, "invalid UTF-8");
	if (!(ps->opts & ADDRESS_ALLOW_UTF8))
		return fail(ps, "UTF-8 address not allowed");
	ps->flags |= ADDRESS_UTF8;
	ps->p += n;
	return 0;
}

/* Consumes characters of an atom or a domain label: atext, or letters/digits/hyphen. */
static int take_run(struct parser *ps, bool atext)
{
	for (;;) {
		unsigned char c = (unsigned char)*ps->p;
		if (c >= 0x80) {
			if (take_utf8(ps) < 0)
				return -1;
		} else if (atext ? is_atext(c) : (is_alnum(c) || c == '-')) {
			ps->p++;
		} else {
			return 0;
		}
	}
}

/* Names what stopped a Dot-string before an atom: at is where the atom should begin. */
static const char *dot_string_error(const char *at, bool first)
{
	if (*at == '.' || !first)
		return "misplaced '.' in local part";
	if (*at == '@' || *at == '>' || *at == '\0')
		return "empty local part";
	return "bad character in local part";
}

/* Dot-string = Atom *("." Atom): no dot at either end, no two in a row. */
static int scan_dot_string(struct parser *ps)
{
	const char *start = ps->p;

	for (;;) {
		const char *atom = ps->p;
		if (take_run(ps, true) < 0)
			return -1;
		if (ps->p == atom)
			return fail(ps, dot_string_error(ps->p, ps->p == start));
		if (*ps->p != '.')
			return 0;
		ps->p++;
	}
}

/* Quoted-string of RFC 5321: qtextSMTP (32..126 but '"' and '\\', plus UTF-8) and quoted
   pairs of a backslash and one printable ASCII character. */
static int scan_quoted(struct parser *ps)
{
	ps->p++;
	for (;;) {
		unsigned char c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			return 0;
		} else if (c == '\\') {
			unsigned char d = (unsigned char)ps->p[1];
			if (d < 32 || d > 126)
				return fail(ps, d == '\0' ? "unterminated quoted string"
							  : "bad quoted pair in local part");
			ps->p += 2;
		} else if (c >= 0x80) {
			if (take_utf8(ps) < 0)
				return -1;
		} else if (c >= 32 && c <= 126) {
			ps->p++;
		} else {
			return fail(ps, c == '\0' ? "unterminated quoted string"
						  : "bad character in quoted string");
		}
	}
}

/* True when s (already validated content) would parse as a Dot-string. */
static bool is_dot_string(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' ? s[i + 1] == '.' : !(c >= 0x80 || is_atext(c)))
			return false;
	}
	return true;
}

/* Writes the canonical form of a validated quoted string q (quotes included): unquoted when
   the content is a dot-string, so "a.b"@x and a.b@x compare equal, else re-quoted with only
   the escapes the grammar needs. Never longer than q. */
static void local_canonical(const char *q, size_t len, char *out)
{
	char content[PROTO_LOCAL_PART_MAX];
	size_t n = 0, o = 0;

	for (size_t i = 1; i + 1 < len; i++) {
		if (q[i] == '\\')
			i++;
		content[n++] = q[i];
	}
	if (is_dot_string(content, n)) {
		memcpy(out, content, n);
		out[n] = '\0';
		return;
	}
	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (content[i] == '"' || content[i] == '\\')
			out[o++] = '\\';
		out[o++] = content[i];
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* The 64-octet limit applies to the local part as sent; the canonical form is never
   longer, so what we store and relay stays within the limit too. */
static int parse_local(struct parser *ps, char *out)
{
	const char *start = ps->p;
	size_t len;

	if (*start == '"' ? scan_quoted(ps) < 0 : scan_dot_string(ps) < 0)
		return -1;
	len = (size_t)(ps->p - start);
	if (len > PROTO_LOCAL_PART_MAX)
		return fail(ps, "local part too long");
	if (*start == '"') {
		local_canonical(start, len, out);
	} else {
		memcpy(out, start, len);
		out[len] = '\0';
	}
	return 0;
}

/* sub-domain = Let-dig [Ldh-str], or a U-label when UTF-8 is allowed. */
static int scan_label(struct parser *ps, bool first)
{
	const char *start = ps->p;

	if (take_run(ps, false) < 0)
		return -1;
	if (ps->p == start)
		return fail(ps, *ps->p == '.' || !first ? "misplaced '.' in domain" : "bad domain");
	if (*start == '-' || ps->p[-1] == '-')
		return fail(ps, "hyphen at start or end of a domain label");
	return 0;
}

static int scan_domain_name(struct parser *ps)
{
	for (bool first = true;; first = false) {
		if (scan_label(ps, first) < 0)
			return -1;
		if (*ps->p != '.')
			return 0;
		ps->p++;
	}
}

/* Standardized-tag = Ldh-str: letters, digits and hyphens, ending in a letter or digit. */
static bool literal_tag_valid(const char *s, size_t len)
{
	if (len == 0 || !is_alnum((unsigned char)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* s is the content between the brackets, all dcontent, at most PROTO_DOMAIN_MAX bytes. */
static bool literal_valid(const char *s, size_t len)
{
	char text[PROTO_DOMAIN_MAX + 1];
	unsigned char bin[16];
	const char *colon;

	memcpy(text, s, len);
	text[len] = '\0';
	colon = memchr(text, ':', len);
	if (colon == NULL)
		return inet_pton(AF_INET, text, bin) == 1;
	if (colon - text == 4 && ascii_ieq(text, "IPv6", 4))
		return inet_pton(AF_INET6, colon + 1, bin) == 1;
	return literal_tag_valid(text, (size_t)(colon - text)) && colon[1] != '\0';
}

static int scan_literal(struct parser *ps)
{
	const char *start = ++ps->p;
	size_t len;

	while (is_dcontent((unsigned char)*ps->p))
		ps->p++;
	len = (size_t)(ps->p - start);
	if (*ps->p != ']')
		return fail(ps, "bad address literal");
	ps->p++;
	if (len + 2 > PROTO_DOMAIN_MAX)
		return fail(ps, "domain too long");
	if (!literal_valid(start, len))
		return fail(ps, "bad address literal");
	ps->flags |= ADDRESS_LITERAL;
	return 0;
}

/* Domain names are stored lower-cased so lookups need no case folding; literals as given. */
static int parse_domain(struct parser *ps, char *out)
{
	const char *start = ps->p;
	size_t len;

	if (*start == '\0' || *start == '>')
		return fail(ps, "missing domain");
	if (*start == '[' ? scan_literal(ps) < 0 : scan_domain_name(ps) < 0)
		return -1;
	len = (size_t)(ps->p - start);
	if (len > PROTO_DOMAIN_MAX)
		return fail(ps, "domain too long");
	for (size_t i = 0; i < len; i++) {
		char c = start[i];
		out[i] = *start != '[' && c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
	}
	out[len] = '\0';
	return 0;
}

/* A-d-l = At-domain *( "," At-domain ) ":"; RFC 5321 C says to accept and ignore it. */
static int parse_route(struct parser *ps)
{
	for (;;) {
		const char *domain = ++ps->p;
		if (scan_domain_name(ps) < 0)
			return -1;
		if (ps->p - domain > PROTO_DOMAIN_MAX)
			return fail(ps, "domain too long");
		if (*ps->p == ':') {
			ps->p++;
			ps->flags |= ADDRESS_ROUTE;
			return 0;
		}
		if (ps->p[0] != ',' || ps->p[1] != '@')
			return fail(ps, "bad source route");
		ps->p++;
	}
}

static int parse_mailbox(struct parser *ps, struct address *addr)
{
	char c;

	if (parse_local(ps, addr->local) < 0)
		return -1;
	c = *ps->p;
	if (c != '@')
		return fail(ps, c == '\0' || c == '>' ? "missing '@'" : "bad character in local part");
	ps->p++;
	if (parse_domain(ps, addr->domain) < 0)
		return -1;
	/* Both parts are bounded by the checks above, so this always fits. */
	strcpy(addr->mailbox, addr->local);
	strcat(addr->mailbox, "@");
	strcat(addr->mailbox, addr->domain);
	return 0;
}

static void set_special(struct address *addr, unsigned flag)
{
	const char *text = flag == ADDRESS_POSTMASTER ? "postmaster" : "";

	strcpy(addr->local, text);
	strcpy(addr->mailbox, text);
	addr->domain[0] = '\0';
	addr->flags = flag;
}

/* After '<': the null path, "<postmaster>", or [route] mailbox; then the '>'. */
static int parse_path_body(struct parser *ps, struct address *addr)
{
	if (*ps->p == '>') {
		if (!(ps->opts & ADDRESS_ALLOW_NULL))
			return fail(ps, "null path not allowed");
		set_special(addr, ADDRESS_NULL);
		ps->flags |= ADDRESS_NULL;
		ps->p++;
		return 0;
	}
	if ((ps->opts & ADDRESS_ALLOW_POSTMASTER) && ascii_ieq(ps->p, "postmaster>", 11)) {
		set_special(addr, ADDRESS_POSTMASTER);
		ps->flags |= ADDRESS_POSTMASTER;
		ps->p += 11;
		return 0;
	}
	if (*ps->p == '@' && parse_route(ps) < 0)
		return -1;
	if (parse_mailbox(ps, addr) < 0)
		return -1;
	if (*ps->p != '>')
		return fail(ps, *ps->p == '\0' ? "missing '>'" : "bad character in domain");
	ps->p++;
	return 0;
}

static int parse_finish(struct parser *ps, struct address *addr, const char **error_r)
{
	if (ps->error != NULL) {
		memset(addr, 0, sizeof(*addr));
		*error_r = ps->error;
		return -1;
	}
	addr->flags = ps->flags;
	return 0;
}

int address_parse_path(const char *s, unsigned opts, struct address *addr_r, const char **end_r,
		       const char **error_r)
{
	struct parser ps = { .p = s + 1, .opts = opts };

	memset(addr_r, 0, sizeof(*addr_r));
	if (*s != '<')
		fail(&ps, "missing '<'");
	else if (parse_path_body(&ps, addr_r) == 0 && ps.p - s > PROTO_PATH_MAX)
		fail(&ps, "path too long");
	if (parse_finish(&ps, addr_r, error_r) < 0)
		return -1;
	*end_r = ps.p;
	return 0;
}

/* The bare form is used for addresses typed by people or stored in configuration; it obeys
   the same options, with "" as the null path and "postmaster" as bare postmaster, and the
   same length limit as a path without its brackets. */
int address_parse_mailbox(const char *s, unsigned opts, struct address *addr_r,
			  const char **error_r)
{
	struct parser ps = { .p = s, .opts = opts };

	memset(addr_r, 0, sizeof(*addr_r));
	if (*s == '\0' && (opts & ADDRESS_ALLOW_NULL)) {
		set_special(addr_r, ADDRESS_NULL);
		return 0;
	}
	if ((opts & ADDRESS_ALLOW_POSTMASTER) && ascii_ieq(s, "postmaster", 11)) {
		set_special(addr_r, ADDRESS_POSTMASTER);
		return 0;
	}
	if (parse_mailbox(&ps, addr_r) == 0) {
		if (*ps.p != '\0')
			fail(&ps, "bad character in domain");
		else if (ps.p - s > PROTO_PATH_MAX - 2)
			fail(&ps, "address too long");
	}
	return parse_finish(&ps, addr_r, error_r);
}
