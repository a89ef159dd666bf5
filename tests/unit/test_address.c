#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "msg/address.h"

/* Failures name the table case, which a bare assert_* would not. */
static void expect_str(size_t i, const char *what, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("case %zu: %s is \"%s\", expected \"%s\"", i, what, got ? got : "(null)",
			 want);
}

static void expect_int(size_t i, const char *what, long got, long want)
{
	if (got != want)
		fail_msg("case %zu: %s is %ld, expected %ld", i, what, got, want);
}

#define N ADDRESS_ALLOW_NULL
#define P ADDRESS_ALLOW_POSTMASTER
#define U ADDRESS_ALLOW_UTF8

/* One address_parse_path case. On success local/domain/mailbox/flags/rest (what end_r points
   at) are compared; on failure error, when set. */
struct path_case {
	const char *in;
	unsigned opts;
	int rc;
	const char *local, *domain, *mailbox;
	unsigned flags;
	const char *rest;
	const char *error;
};

#define OK(in, opts, local, domain, mailbox, flags, rest) \
	{ in, opts, 0, local, domain, mailbox, flags, rest, NULL }
#define BAD(in, opts, error) { in, opts, -1, NULL, NULL, NULL, 0, NULL, error }

static const struct path_case path_cases[] = {
	/* plain dot-strings and domains */
	OK("<user@example.com>", 0, "user", "example.com", "user@example.com", 0, ""),
	OK("<User.Name@Example.COM>", 0, "User.Name", "example.com", "User.Name@example.com", 0, ""),
	OK("<a@b> SIZE=1", 0, "a", "b", "a@b", 0, " SIZE=1"),
	OK("<a@b>>", 0, "a", "b", "a@b", 0, ">"),
	OK("<!#$%&'*+-/=?^_`{|}~@example.com>", 0, "!#$%&'*+-/=?^_`{|}~", "example.com",
	   "!#$%&'*+-/=?^_`{|}~@example.com", 0, ""),
	OK("<a-b.c-d@x-y.example>", 0, "a-b.c-d", "x-y.example", "a-b.c-d@x-y.example", 0, ""),
	OK("<user@localhost>", 0, "user", "localhost", "user@localhost", 0, ""),
	OK("<1@2.3>", 0, "1", "2.3", "1@2.3", 0, ""),
	OK("<a@xn--bcher-kva.example>", 0, "a", "xn--bcher-kva.example", "a@xn--bcher-kva.example", 0,
	   ""),
	OK("<a@a--b.example>", 0, "a", "a--b.example", "a@a--b.example", 0, ""),
	/* quoted local parts and their canonical form */
	OK("<\"john doe\"@example.com>", 0, "\"john doe\"", "example.com", "\"john doe\"@example.com",
	   0, ""),
	OK("<\"john.doe\"@example.com>", 0, "john.doe", "example.com", "john.doe@example.com", 0, ""),
	OK("<\"a\\\"b\"@x.org>", 0, "\"a\\\"b\"", "x.org", "\"a\\\"b\"@x.org", 0, ""),
	OK("<\"a\\bc\"@x.org>", 0, "abc", "x.org", "abc@x.org", 0, ""),
	OK("<\"a\\\\b\"@x.org>", 0, "\"a\\\\b\"", "x.org", "\"a\\\\b\"@x.org", 0, ""),
	OK("<\"\"@x.org>", 0, "\"\"", "x.org", "\"\"@x.org", 0, ""),
	OK("<\".a\"@x.org>", 0, "\".a\"", "x.org", "\".a\"@x.org", 0, ""),
	OK("<\"a.\"@x.org>", 0, "\"a.\"", "x.org", "\"a.\"@x.org", 0, ""),
	OK("<\"a..b\"@x.org>", 0, "\"a..b\"", "x.org", "\"a..b\"@x.org", 0, ""),
	OK("<\"a@b\"@x.org>", 0, "\"a@b\"", "x.org", "\"a@b\"@x.org", 0, ""),
	OK("<\"a b\\ c\"@x.org>", 0, "\"a b c\"", "x.org", "\"a b c\"@x.org", 0, ""),
	OK("<\"a>b\"@x.org>", 0, "\"a>b\"", "x.org", "\"a>b\"@x.org", 0, ""),
	OK("<\"a\\(b\"@x.org>", 0, "\"a(b\"", "x.org", "\"a(b\"@x.org", 0, ""),
	/* address literals */
	OK("<a@[192.0.2.1]>", 0, "a", "[192.0.2.1]", "a@[192.0.2.1]", ADDRESS_LITERAL, ""),
	OK("<a@[IPv6:2001:db8::1]>", 0, "a", "[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]",
	   ADDRESS_LITERAL, ""),
	OK("<A@[IPv6:2001:DB8::1]>", 0, "A", "[IPv6:2001:DB8::1]", "A@[IPv6:2001:DB8::1]",
	   ADDRESS_LITERAL, ""),
	OK("<a@[ipv6:::1]>", 0, "a", "[ipv6:::1]", "a@[ipv6:::1]", ADDRESS_LITERAL, ""),
	OK("<a@[IPv6:::ffff:192.0.2.1]>", 0, "a", "[IPv6:::ffff:192.0.2.1]",
	   "a@[IPv6:::ffff:192.0.2.1]", ADDRESS_LITERAL, ""),
	OK("<a@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, "a", "[IPv6:2001:db8:0:0:0:0:0:1]",
	   "a@[IPv6:2001:db8:0:0:0:0:0:1]", ADDRESS_LITERAL, ""),
	OK("<a@[IPv4:192.0.2.1]>", 0, "a", "[IPv4:192.0.2.1]", "a@[IPv4:192.0.2.1]", ADDRESS_LITERAL,
	   ""),
	OK("<a@[x-tag:some:thing]>", 0, "a", "[x-tag:some:thing]", "a@[x-tag:some:thing]",
	   ADDRESS_LITERAL, ""),
	/* null path, postmaster, source routes */
	OK("<>", N, "", "", "", ADDRESS_NULL, ""),
	OK("<> SIZE=1", N | P | U, "", "", "", ADDRESS_NULL, " SIZE=1"),
	OK("<postmaster>", P, "postmaster", "", "postmaster", ADDRESS_POSTMASTER, ""),
	OK("<PostMaster>", P, "postmaster", "", "postmaster", ADDRESS_POSTMASTER, ""),
	OK("<Postmaster@Example.com>", P, "Postmaster", "example.com", "Postmaster@example.com", 0,
	   ""),
	OK("<@a.example:user@b.example>", 0, "user", "b.example", "user@b.example", ADDRESS_ROUTE,
	   ""),
	OK("<@a.example,@b.example:user@c.example>", 0, "user", "c.example", "user@c.example",
	   ADDRESS_ROUTE, ""),
	/* UTF-8 (RFC 6531) */
	OK("<j\xc3\xb6s@ex\xc3\xa4mple.de>", U, "j\xc3\xb6s", "ex\xc3\xa4mple.de",
	   "j\xc3\xb6s@ex\xc3\xa4mple.de", ADDRESS_UTF8, ""),
	OK("<a@EX\xc3\x84MPLE.DE>", U, "a", "ex\xc3\x84mple.de", "a@ex\xc3\x84mple.de", ADDRESS_UTF8,
	   ""),
	OK("<\"j\xc3\xb6 s\"@example.de>", U, "\"j\xc3\xb6 s\"", "example.de",
	   "\"j\xc3\xb6 s\"@example.de", ADDRESS_UTF8, ""),
	OK("<\"j\xc3\xb6s\"@example.de>", U, "j\xc3\xb6s", "example.de", "j\xc3\xb6s@example.de",
	   ADDRESS_UTF8, ""),
	OK("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", U,
	   "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	   "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", ADDRESS_UTF8,
	   ""),
	OK("<\xf0\x9f\x98\x80@x.org>", U, "\xf0\x9f\x98\x80", "x.org", "\xf0\x9f\x98\x80@x.org",
	   ADDRESS_UTF8, ""),
	OK("<a@\xc3\xa9.x>", U, "a", "\xc3\xa9.x", "a@\xc3\xa9.x", ADDRESS_UTF8, ""),
	OK("<@\xc3\xa9.x:a@b>", U, "a", "b", "a@b", ADDRESS_UTF8 | ADDRESS_ROUTE, ""),
	OK("<user@example.com>", N | P | U, "user", "example.com", "user@example.com", 0, ""),

	BAD("<j\xc3\xb6s@example.de>", 0, "UTF-8 address not allowed"),
	BAD("<a@ex\xc3\xa4mple.de>", N | P, "UTF-8 address not allowed"),
	BAD("<\"j\xc3\xb6s\"@example.de>", 0, "UTF-8 address not allowed"),
	BAD("<\xc0\xaf@x.org>", U, "invalid UTF-8"),
	BAD("<\xc0\xaf@x.org>", 0, "invalid UTF-8"),
	BAD("<\xc1\xbf@x.org>", U, "invalid UTF-8"),
	BAD("<\xe0\x80\xaf@x.org>", U, "invalid UTF-8"),
	BAD("<\xf0\x80\x80\xaf@x.org>", U, "invalid UTF-8"),
	BAD("<\xed\xa0\x80@x.org>", U, "invalid UTF-8"),
	BAD("<\xed\xbf\xbf@x.org>", U, "invalid UTF-8"),
	BAD("<\xf4\x90\x80\x80@x.org>", U, "invalid UTF-8"),
	BAD("<\xf5\x80\x80\x80@x.org>", U, "invalid UTF-8"),
	BAD("<\xff@x.org>", U, "invalid UTF-8"),
	BAD("<j\xc3@x.org>", U, "invalid UTF-8"),
	BAD("<j\xe2\x82@x.org>", U, "invalid UTF-8"),
	BAD("<j\xc3", U, "invalid UTF-8"),
	BAD("<\x80@x.org>", U, "invalid UTF-8"),
	BAD("<a@x\xc3.org>", U, "invalid UTF-8"),
	BAD("<\"\xc3\"@x.org>", U, "invalid UTF-8"),
	BAD("<\"\\\xc3\xa9\"@x.org>", U, "bad quoted pair in local part"),
	BAD("<a@\xc3\xa9-.x>", U, "hyphen at start or end of a domain label"),
	/* brackets */
	BAD("", N | P | U, "missing '<'"),
	BAD("a@b.c", 0, "missing '<'"),
	BAD(" <a@b.c>", 0, "missing '<'"),
	BAD("<a@b.c", 0, "missing '>'"),
	BAD("<a@[1.2.3.4]", 0, "missing '>'"),
	BAD("<a@b\0c>", 0, "missing '>'"),
	BAD("<", 0, "empty local part"),
	BAD("<<a@b>>", 0, "bad character in local part"),
	/* null path and postmaster without permission */
	BAD("<>", 0, "null path not allowed"),
	BAD("<>", P | U, "null path not allowed"),
	BAD("<postmaster>", 0, "missing '@'"),
	BAD("<postmaster>", N | U, "missing '@'"),
	BAD("<\"postmaster\">", P, "missing '@'"),
	BAD("<@a:postmaster>", P, "missing '@'"),
	/* local part syntax */
	BAD("<.a@b>", 0, "misplaced '.' in local part"),
	BAD("<a.@b>", 0, "misplaced '.' in local part"),
	BAD("<a..b@c>", 0, "misplaced '.' in local part"),
	BAD("<a>", 0, "missing '@'"),
	BAD("<a b@c>", 0, "bad character in local part"),
	BAD("<a\"b@c>", 0, "bad character in local part"),
	BAD("<a(b)@c>", 0, "bad character in local part"),
	BAD("<a\x01" "b@c>", 0, "bad character in local part"),
	BAD("<a\tb@c>", 0, "bad character in local part"),
	BAD("<\"abc@x>", 0, "unterminated quoted string"),
	BAD("<\"a\\", 0, "unterminated quoted string"),
	BAD("<\"ab\\\x01\"@x>", 0, "bad quoted pair in local part"),
	BAD("<\"ab\\\x7f\"@x>", 0, "bad quoted pair in local part"),
	BAD("<\"a\tb\"@x>", 0, "bad character in quoted string"),
	BAD("<\"a\x7f" "b\"@x>", 0, "bad character in quoted string"),
	BAD("<\"a\"b@x>", 0, "bad character in local part"),
	/* domain syntax */
	BAD("<a@>", 0, "missing domain"),
	BAD("<a@", 0, "missing domain"),
	BAD("<a@b..c>", 0, "misplaced '.' in domain"),
	BAD("<a@.b>", 0, "misplaced '.' in domain"),
	BAD("<a@b.>", 0, "misplaced '.' in domain"),
	BAD("<a@-b.c>", 0, "hyphen at start or end of a domain label"),
	BAD("<a@b-.c>", 0, "hyphen at start or end of a domain label"),
	BAD("<a@b.c->", 0, "hyphen at start or end of a domain label"),
	BAD("<a@b_c.d>", 0, "bad character in domain"),
	BAD("<a@b c>", 0, "bad character in domain"),
	BAD("<a@b@c>", 0, "bad character in domain"),
	BAD("<a@b\x7f>", 0, "bad character in domain"),
	BAD("<a@_x>", 0, "bad domain"),
	/* address literals */
	BAD("<a@[192.0.2.256]>", 0, "bad address literal"),
	BAD("<a@[192.0.2]>", 0, "bad address literal"),
	BAD("<a@[192.0.2.1.5]>", 0, "bad address literal"),
	BAD("<a@[192.0.2.01]>", 0, "bad address literal"),
	BAD("<a@[IPv6:2001:db8::g]>", 0, "bad address literal"),
	BAD("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, "bad address literal"),
	BAD("<a@[IPv6:1::2::3]>", 0, "bad address literal"),
	BAD("<a@[IPv6:fe80::1%eth0]>", 0, "bad address literal"),
	BAD("<a@[IPv6:192.0.2.1]>", 0, "bad address literal"),
	BAD("<a@[::1]>", 0, "bad address literal"),
	BAD("<a@[1.2.3.4>", 0, "bad address literal"),
	BAD("<a@[]>", 0, "bad address literal"),
	BAD("<a@[tag:]>", 0, "bad address literal"),
	BAD("<a@[tag-:x]>", 0, "bad address literal"),
	BAD("<a@[t_g:x]>", 0, "bad address literal"),
	BAD("<a@[tag:a b]>", 0, "bad address literal"),
	BAD("<a@[tag:a\\b]>", 0, "bad address literal"),
	BAD("<a@[1.2.3.4]x>", 0, "bad character in domain"),
	BAD("<a@[1.2.3.4].com>", 0, "bad character in domain"),
	BAD("<a@[ 1.2.3.4]>", 0, "bad address literal"),
	/* source routes */
	BAD("<@b>", 0, "bad source route"),
	BAD("<@a,b:c@d>", 0, "bad source route"),
	BAD("<@a;@b:c@d>", 0, "bad source route"),
	BAD("<@a:>", 0, "empty local part"),
	BAD("<@[1.2.3.4]:a@b>", 0, "bad domain"),
	BAD("<@a.b,@:a@b>", 0, "bad domain"),
	BAD("<@:a@b>", 0, "bad domain"),
	BAD("<@-a:x@b>", 0, "hyphen at start or end of a domain label"),
};

static void test_path_table(void **state)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct address addr;
		const char *end = NULL, *error = NULL;
		int rc = address_parse_path(c->in, c->opts, &addr, &end, &error);
		expect_int(i, "rc", rc, c->rc);
		if (rc < 0) {
			expect_str(i, "error", error, c->error);
			continue;
		}
		expect_str(i, "local", addr.local, c->local);
		expect_str(i, "domain", addr.domain, c->domain);
		expect_str(i, "mailbox", addr.mailbox, c->mailbox);
		expect_int(i, "flags", addr.flags, c->flags);
		expect_str(i, "rest", end, c->rest);
	}
}

/* The canonical mailbox, put back in brackets, must parse to itself. */
static void test_path_canonical_stable(void **state)
{
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct address first, again;
		const char *end, *error;
		char buf[sizeof(first.mailbox) + 2];
		if (c->rc < 0 || (c->flags & (ADDRESS_NULL | ADDRESS_POSTMASTER)))
			continue;
		expect_int(i, "rc", address_parse_path(c->in, c->opts, &first, &end, &error), 0);
		snprintf(buf, sizeof(buf), "<%s>", first.mailbox);
		expect_int(i, "rc again", address_parse_path(buf, c->opts, &again, &end, &error), 0);
		expect_str(i, "mailbox again", again.mailbox, first.mailbox);
		expect_str(i, "local again", again.local, first.local);
	}
}

/* Returns a domain of exactly n octets: labels of 'a' separated by dots. */
static void make_domain(char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = i % 50 == 49 && i + 1 < n ? '.' : 'a';
	out[n] = '\0';
}

struct length_case {
	size_t local_len, domain_len, route_len;
	bool quoted;
	int rc;
	const char *error;
};

static const struct length_case length_cases[] = {
	{ 64, 10, 0, false, 0, NULL },
	{ 65, 10, 0, false, -1, "local part too long" },
	{ 62, 10, 0, true, 0, NULL },
	{ 63, 10, 0, true, -1, "local part too long" },
	{ 1, 252, 0, false, 0, NULL },
	{ 1, 253, 0, false, -1, "path too long" },
	{ 1, 255, 0, false, -1, "path too long" },
	{ 1, 256, 0, false, -1, "domain too long" },
	{ 64, 189, 0, false, 0, NULL },
	{ 64, 190, 0, false, -1, "path too long" },
	{ 1, 10, 200, false, 0, NULL },
	{ 1, 10, 240, false, 0, NULL },
	{ 1, 10, 241, false, -1, "path too long" },
	{ 1, 10, 256, false, -1, "domain too long" },
	{ 1000, 10, 0, false, -1, "local part too long" },
	{ 1, 1000, 0, false, -1, "domain too long" },
};

static void build_path(const struct length_case *c, char *buf)
{
	char *p = buf;

	*p++ = '<';
	if (c->route_len > 0) {
		*p++ = '@';
		make_domain(p, c->route_len);
		p += c->route_len;
		*p++ = ':';
	}
	if (c->quoted)
		*p++ = '"';
	memset(p, 'l', c->local_len);
	p += c->local_len;
	if (c->quoted)
		*p++ = '"';
	*p++ = '@';
	make_domain(p, c->domain_len);
	p += c->domain_len;
	strcpy(p, ">");
}

static void test_path_lengths(void **state)
{
	static char buf[4096];

	for (size_t i = 0; i < sizeof(length_cases) / sizeof(length_cases[0]); i++) {
		const struct length_case *c = &length_cases[i];
		struct address addr;
		const char *end, *error = NULL;
		build_path(c, buf);
		expect_int(i, "rc", address_parse_path(buf, 0, &addr, &end, &error), c->rc);
		if (c->rc < 0)
			expect_str(i, "error", error, c->error);
		else
			expect_int(i, "domain length", (long)strlen(addr.domain), (long)c->domain_len);
	}
}

struct mailbox_case {
	const char *in;
	unsigned opts;
	int rc;
	const char *mailbox;
	unsigned flags;
	const char *error;
};

static const struct mailbox_case mailbox_cases[] = {
	{ "user@Example.com", 0, 0, "user@example.com", 0, NULL },
	{ "\"a b\"@x", 0, 0, "\"a b\"@x", 0, NULL },
	{ "\"ab\"@x", 0, 0, "ab@x", 0, NULL },
	{ "a@[192.0.2.1]", 0, 0, "a@[192.0.2.1]", ADDRESS_LITERAL, NULL },
	{ "j\xc3\xb6s@x", U, 0, "j\xc3\xb6s@x", ADDRESS_UTF8, NULL },
	{ "j\xc3\xb6s@x", 0, -1, NULL, 0, "UTF-8 address not allowed" },
	{ "", N, 0, "", ADDRESS_NULL, NULL },
	{ "", 0, -1, NULL, 0, "empty local part" },
	{ "postmaster", P, 0, "postmaster", ADDRESS_POSTMASTER, NULL },
	{ "POSTMASTER", P, 0, "postmaster", ADDRESS_POSTMASTER, NULL },
	{ "postmaster", 0, -1, NULL, 0, "missing '@'" },
	{ "postmasters", P, -1, NULL, 0, "missing '@'" },
	{ "user@example.com>", 0, -1, NULL, 0, "bad character in domain" },
	{ "user@example.com ", 0, -1, NULL, 0, "bad character in domain" },
	{ "<user@example.com>", 0, -1, NULL, 0, "bad character in local part" },
	{ "@a:user@example.com", 0, -1, NULL, 0, "empty local part" },
	{ "user", 0, -1, NULL, 0, "missing '@'" },
	{ "user@", 0, -1, NULL, 0, "missing domain" },
};

static void test_mailbox_table(void **state)
{
	for (size_t i = 0; i < sizeof(mailbox_cases) / sizeof(mailbox_cases[0]); i++) {
		const struct mailbox_case *c = &mailbox_cases[i];
		struct address addr;
		const char *error = NULL;
		int rc = address_parse_mailbox(c->in, c->opts, &addr, &error);
		expect_int(i, "rc", rc, c->rc);
		if (rc < 0) {
			expect_str(i, "error", error, c->error);
			continue;
		}
		expect_str(i, "mailbox", addr.mailbox, c->mailbox);
		expect_int(i, "flags", addr.flags, c->flags);
	}
}

/* A bare mailbox may be as long as a path without its brackets, 254 octets. */
static void test_mailbox_length(void **state)
{
	char buf[300];
	struct address addr;
	const char *error;

	strcpy(buf, "a@");
	make_domain(buf + 2, 252);
	assert_int_equal(address_parse_mailbox(buf, 0, &addr, &error), 0);
	make_domain(buf + 2, 253);
	assert_int_equal(address_parse_mailbox(buf, 0, &addr, &error), -1);
	assert_string_equal(error, "address too long");
}

struct utf8_case {
	const char *s;
	unsigned long len;
	bool valid;
};

static const struct utf8_case utf8_cases[] = {
	{ "", 0, true },
	{ "abc", 3, true },
	{ "a\0b", 3, true },
	{ "\xc3\xa9", 2, true },
	{ "\xc3\xa9", 1, false },
	{ "\xc3", 1, false },
	{ "\xc0\x80", 2, false },
	{ "\xc1\xbf", 2, false },
	{ "\xc2\x80", 2, true },
	{ "\xdf\xbf", 2, true },
	{ "\xe0\x9f\xbf", 3, false },
	{ "\xe0\xa0\x80", 3, true },
	{ "\xed\x9f\xbf", 3, true },
	{ "\xed\xa0\x80", 3, false },
	{ "\xed\xbf\xbf", 3, false },
	{ "\xee\x80\x80", 3, true },
	{ "\xef\xbf\xbf", 3, true },
	{ "\xe2\x82", 2, false },
	{ "\xe2\x28\xa1", 3, false },
	{ "\xf0\x8f\xbf\xbf", 4, false },
	{ "\xf0\x90\x80\x80", 4, true },
	{ "\xf4\x8f\xbf\xbf", 4, true },
	{ "\xf4\x90\x80\x80", 4, false },
	{ "\xf5\x80\x80\x80", 4, false },
	{ "\xf8\x88\x80\x80\x80", 5, false },
	{ "\xff", 1, false },
	{ "\x80", 1, false },
	{ "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 11, true },
};

static void test_utf8_valid(void **state)
{
	for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		expect_int(i, "valid", address_utf8_valid(utf8_cases[i].s, utf8_cases[i].len),
			   utf8_cases[i].valid);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_canonical_stable),
		cmocka_unit_test(test_path_lengths),
		cmocka_unit_test(test_mailbox_table),
		cmocka_unit_test(test_mailbox_length),
		cmocka_unit_test(test_utf8_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
