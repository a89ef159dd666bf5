#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "net/cidr.h"

/* ---- cidr_parse ---- */

struct parse_case {
	const char *in;
	int rc;
	int family;
	const char *addr; /* the address in canonical form (inet_ntop) */
	int prefix;
};

#define OK4(in, addr, prefix) { in, 0, AF_INET, addr, prefix }
#define OK6(in, addr, prefix) { in, 0, AF_INET6, addr, prefix }
#define BAD(in) { in, -1, 0, NULL, 0 }

static const struct parse_case parse_cases[] = {
	OK4("127.0.0.0/8", "127.0.0.0", 8),
	OK4("127.0.0.1", "127.0.0.1", 32),
	OK4("0.0.0.0/0", "0.0.0.0", 0),
	OK4("255.255.255.255/32", "255.255.255.255", 32),
	OK4("10.1.2.3/8", "10.1.2.3", 8), /* host bits are kept, and ignored by cidr_match */
	OK4("192.0.2.0/31", "192.0.2.0", 31),
	OK4("192.0.2.0/1", "192.0.2.0", 1),
	OK4("[192.0.2.1]", "192.0.2.1", 32),
	OK4("[192.0.2.0]/24", "192.0.2.0", 24),
	OK4("10.0.0.0/08", "10.0.0.0", 8),   /* leading zeros: decimal, never octal */
	OK4("10.0.0.0/032", "10.0.0.0", 32),
	OK4("10.0.0.0/000", "10.0.0.0", 0),
	OK6("::1", "::1", 128),
	OK6("::", "::", 128),
	OK6("::/0", "::", 0),
	OK6("::1/128", "::1", 128),
	OK6("[::1]/128", "::1", 128),
	OK6("[::1]", "::1", 128),
	OK6("[2001:db8::]/32", "2001:db8::", 32),
	OK6("2001:DB8::/32", "2001:db8::", 32),
	OK6("2001:db8::/127", "2001:db8::", 127),
	OK6("fe80::/10", "fe80::", 10),
	OK6("::ffff:192.0.2.1", "::ffff:192.0.2.1", 128),
	OK6("::ffff:10.0.0.0/104", "::ffff:10.0.0.0", 104),
	OK6("2001:0db8:0000:0000:0000:0000:0000:0001/064", "2001:db8::1", 64),
	OK6("[0000:0000:0000:0000:0000:ffff:255.255.255.255]/128", "::ffff:255.255.255.255", 128),
	OK6("::/009", "::", 9),
	BAD(""),
	BAD("/"),
	BAD("/8"),
	BAD("/0"),
	BAD("1.2.3.4/"),
	BAD("::1/"),
	BAD("[::1]/"),
	BAD("1.2.3.4/33"),
	BAD("1.2.3.4/99"),
	BAD("1.2.3.4/100"),
	BAD("1.2.3.4/999"),
	BAD("::1/129"),
	BAD("::1/200"),
	BAD("1.2.3.4/-1"),
	BAD("1.2.3.4/-0"),
	BAD("1.2.3.4/+8"),
	BAD("1.2.3.4/ 8"),
	BAD("1.2.3.4/8 "),
	BAD("1.2.3.4/8\n"),
	BAD("1.2.3.4/0008"),
	BAD("1.2.3.4/00032"),
	BAD("1.2.3.4/8/8"),
	BAD("1.2.3.4//8"),
	BAD("1.2.3.4/1e1"),
	BAD("1.2.3.4/0x8"),
	BAD("1.2.3.4/8a"),
	BAD("1.2.3.4/\xff"),
	BAD("1.2.3.4/99999999999999999999"),
	BAD(" 1.2.3.4"),
	BAD("1.2.3.4 "),
	BAD("1.2.3"),
	BAD("1.2.3.4.5"),
	BAD("1.2.3.256"),
	BAD("256.0.0.0/8"),
	BAD("01.2.3.4"),
	BAD("1.2.3.04"),
	BAD("0x7f.0.0.1"),
	BAD("127.1"),
	BAD("2130706433"),
	BAD("1.2.3.4:25"),
	BAD("[1.2.3.4"),
	BAD("1.2.3.4]"),
	BAD("[1.2.3.4]]"),
	BAD("[[::1]]"),
	BAD("[]"),
	BAD("[]/8"),
	BAD("["),
	BAD("]"),
	BAD("[::1/128]"),
	BAD("[::1]:25"),
	BAD("IPv6:::1"),
	BAD("::1%lo"),
	BAD("fe80::1%eth0/64"),
	BAD("2001:db8:::1"),
	BAD("2001:db8::1::1"),
	BAD("1:2:3:4:5:6:7:8:9"),
	BAD("12345::"),
	BAD("g::1"),
	BAD("::ffff:1.2.3"),
	BAD("localhost"),
	BAD("example.com/24"),
	BAD("garbage"),
	BAD("*"),
};

static void test_cidr_parse(void **state)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct cidr net;
		memset(&net, 0xA5, sizeof(net));
		int rc = cidr_parse(c->in, &net);
		if (rc != c->rc)
			fail_msg("case %zu \"%s\": cidr_parse returned %d, expected %d", i, c->in, rc,
				 c->rc);
		if (rc < 0 || c->addr == NULL)
			continue;
		char text[INET6_ADDRSTRLEN];
		if (net.family != c->family)
			fail_msg("case %zu \"%s\": family %d, expected %d", i, c->in, net.family,
				 c->family);
		if (net.prefix != c->prefix)
			fail_msg("case %zu \"%s\": prefix %d, expected %d", i, c->in, net.prefix,
				 c->prefix);
		if (inet_ntop(net.family, net.addr, text, sizeof(text)) == NULL ||
		    strcmp(text, c->addr) != 0)
			fail_msg("case %zu \"%s\": address %s, expected %s", i, c->in, text, c->addr);
		if (net.family == AF_INET) {
			static const unsigned char zero[12];
			if (memcmp(net.addr + 4, zero, sizeof(zero)) != 0)
				fail_msg("case %zu \"%s\": bytes after the IPv4 address not cleared", i,
					 c->in);
		}
	}
	/* the string ends at a NUL: what follows it is not looked at */
	struct cidr net;
	assert_int_equal(cidr_parse("1.2.3.4\0/8", &net), 0);
	assert_int_equal(net.prefix, 32);
}

/* Strings of every length up to 300 around the buffer inside cidr_parse. */
static void test_cidr_parse_long(void **state)
{
	char s[301];
	struct cidr net;
	for (size_t n = 0; n <= 300; n++) {
		memset(s, '1', n);
		s[n] = '\0';
		assert_int_equal(cidr_parse(s, &net), -1);
		memset(s, ':', n);
		assert_int_equal(cidr_parse(s, &net), n == 2 ? 0 : -1);
		/* a valid network padded with zeros in the prefix */
		if (n > 9) {
			memcpy(s, "1.2.3.4/", 8);
			memset(s + 8, '0', n - 8);
			assert_int_equal(cidr_parse(s, &net), n - 8 <= 3 ? 0 : -1);
		}
	}
	char big[100000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(cidr_parse(big, &net), -1);
	memcpy(big, "::1/", 4);
	assert_int_equal(cidr_parse(big, &net), -1);
}

/* ---- cidr_match ---- */

struct match_case {
	const char *net;
	const char *addr; /* an IPv4 or IPv6 address, made into sockaddr_in / sockaddr_in6 */
	bool match;
};

static const struct match_case match_cases[] = {
	/* /0 */
	{ "0.0.0.0/0", "0.0.0.0", true },
	{ "0.0.0.0/0", "255.255.255.255", true },
	{ "0.0.0.0/0", "::ffff:192.0.2.1", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "0.0.0.0/0", "::", false },
	{ "::/0", "::", true },
	{ "::/0", "2001:db8::1", true },
	{ "::/0", "::ffff:192.0.2.1", true },
	{ "::/0", "192.0.2.1", false },
	/* /1 */
	{ "128.0.0.0/1", "128.0.0.0", true },
	{ "128.0.0.0/1", "255.255.255.255", true },
	{ "128.0.0.0/1", "127.255.255.255", false },
	{ "0.0.0.0/1", "127.255.255.255", true },
	{ "0.0.0.0/1", "128.0.0.0", false },
	{ "8000::/1", "ffff::", true },
	{ "8000::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false },
	/* /7 and /9 straddle a byte */
	{ "10.0.0.0/7", "10.0.0.0", true },
	{ "10.0.0.0/7", "11.255.255.255", true },
	{ "10.0.0.0/7", "9.255.255.255", false },
	{ "10.0.0.0/7", "12.0.0.0", false },
	{ "10.0.0.0/9", "10.127.255.255", true },
	{ "10.0.0.0/9", "10.128.0.0", false },
	{ "10.128.0.0/9", "10.128.0.0", true },
	{ "10.128.0.0/9", "10.255.255.255", true },
	{ "10.128.0.0/9", "10.127.255.255", false },
	{ "10.128.0.0/9", "11.128.0.0", false },
	{ "0200::/7", "0300::1", true },
	{ "0200::/7", "0400::", false },
	{ "2001:db8::/9", "2000::", true },
	{ "2001:db8::/9", "2080::", false },
	/* /8 and /24: whole bytes */
	{ "127.0.0.0/8", "127.255.0.1", true },
	{ "127.0.0.0/8", "128.0.0.1", false },
	{ "192.0.2.0/24", "192.0.2.255", true },
	{ "192.0.2.0/24", "192.0.3.0", false },
	/* /31, /32 */
	{ "192.0.2.0/31", "192.0.2.0", true },
	{ "192.0.2.0/31", "192.0.2.1", true },
	{ "192.0.2.0/31", "192.0.2.2", false },
	{ "192.0.2.0/31", "192.0.1.255", false },
	{ "192.0.2.1", "192.0.2.1", true },
	{ "192.0.2.1/32", "192.0.2.0", false },
	{ "192.0.2.1/32", "192.0.2.3", false },
	{ "192.0.2.1/32", "::ffff:192.0.2.1", true },
	{ "192.0.2.1/32", "::ffff:192.0.2.2", false },
	/* host bits in the network do not matter */
	{ "10.1.2.3/8", "10.200.0.1", true },
	{ "10.1.2.3/8", "11.1.2.3", false },
	/* /127, /128 */
	{ "2001:db8::/127", "2001:db8::", true },
	{ "2001:db8::/127", "2001:db8::1", true },
	{ "2001:db8::/127", "2001:db8::2", false },
	{ "2001:db8::/127", "2001:db8:0:0:8000::", false },
	{ "::1", "::1", true },
	{ "::1/128", "::", false },
	{ "::1/128", "::2", false },
	{ "::1/128", "127.0.0.1", false },
	{ "[2001:db8::1]/128", "2001:db8::1", true },
	{ "2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true },
	{ "2001:db8::/32", "2001:db9::", false },
	/* IPv4-mapped IPv6 clients match IPv4 networks; nothing else crosses families */
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "10.0.0.0/8", "::10.1.2.3", false },        /* IPv4-compatible, not mapped */
	{ "10.0.0.0/8", "::ffff:0:10.1.2.3", false }, /* SIIT, not mapped */
	{ "10.0.0.0/8", "64:ff9b::10.1.2.3", false }, /* NAT64 */
	{ "10.0.0.0/8", "0:0:0:0:1:ffff:a01:203", false },
	{ "10.0.0.0/8", "10::", false },
	{ "0.0.0.0/0", "::fffe:10.1.2.3", false },
	{ "::ffff:10.0.0.0/104", "::ffff:10.1.2.3", true },
	{ "::ffff:10.0.0.0/104", "::ffff:11.1.2.3", false },
	{ "::ffff:10.0.0.0/104", "10.1.2.3", false },
	{ "127.0.0.1", "::1", false },
	{ "::1", "127.0.0.1", false },
};

union any_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

static void make_sockaddr(const char *addr, union any_sockaddr *u)
{
	memset(u, 0, sizeof(*u));
	if (inet_pton(AF_INET, addr, &u->in.sin_addr) == 1) {
		u->in.sin_family = AF_INET;
		u->in.sin_port = htons(25);
	} else if (inet_pton(AF_INET6, addr, &u->in6.sin6_addr) == 1) {
		u->in6.sin6_family = AF_INET6;
		u->in6.sin6_port = htons(25);
		u->in6.sin6_scope_id = 3;
	} else {
		fail_msg("bad test address %s", addr);
	}
}

static void test_cidr_match(void **state)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct cidr net;
		union any_sockaddr u;
		if (cidr_parse(c->net, &net) != 0)
			fail_msg("case %zu: cannot parse %s", i, c->net);
		make_sockaddr(c->addr, &u);
		if (cidr_match(&net, &u.sa) != c->match)
			fail_msg("case %zu: cidr_match(%s, %s) is %d", i, c->net, c->addr, !c->match);
		if (cidr_match_any(&net, 1, &u.sa) != c->match)
			fail_msg("case %zu: cidr_match_any(%s, %s) is %d", i, c->net, c->addr, !c->match);
	}
}

/* Every prefix length against addresses just inside and just outside the network. */
static void test_cidr_match_every_prefix(void **state)
{
	for (int family = 0; family < 2; family++) {
		int max = family == 0 ? 32 : 128;
		for (int prefix = 0; prefix <= max; prefix++) {
			char text[64];
			struct cidr net;
			snprintf(text, sizeof(text), "%s/%d", family == 0 ? "10.20.30.40" : "2001:db8:1:2:3:4:5:6",
				 prefix);
			assert_int_equal(cidr_parse(text, &net), 0);
			union any_sockaddr u;
			make_sockaddr(family == 0 ? "10.20.30.40" : "2001:db8:1:2:3:4:5:6", &u);
			unsigned char *bytes = family == 0 ? (unsigned char *)&u.in.sin_addr
							   : u.in6.sin6_addr.s6_addr;
			assert_true(cidr_match(&net, &u.sa));
			/* flipping any bit inside the prefix leaves the network, outside stays */
			for (int bit = 0; bit < max; bit++) {
				bytes[bit / 8] ^= (unsigned char)(0x80 >> (bit % 8));
				if (cidr_match(&net, &u.sa) != (bit >= prefix))
					fail_msg("%s: bit %d flipped: match is %d", text, bit, bit < prefix);
				bytes[bit / 8] ^= (unsigned char)(0x80 >> (bit % 8));
			}
			if (family == 0) {
				/* and the same through an IPv4-mapped IPv6 address */
				union any_sockaddr m;
				make_sockaddr("::ffff:10.20.30.40", &m);
				for (int bit = 0; bit < 32; bit++) {
					m.in6.sin6_addr.s6_addr[12 + bit / 8] ^= (unsigned char)(0x80 >> (bit % 8));
					if (cidr_match(&net, &m.sa) != (bit >= prefix))
						fail_msg("%s: mapped, bit %d flipped", text, bit);
					m.in6.sin6_addr.s6_addr[12 + bit / 8] ^= (unsigned char)(0x80 >> (bit % 8));
				}
			}
		}
	}
}

static void test_cidr_match_any(void **state)
{
	struct cidr nets[4];
	union any_sockaddr u;
	assert_int_equal(cidr_parse("127.0.0.0/8", &nets[0]), 0);
	assert_int_equal(cidr_parse("[::1]/128", &nets[1]), 0);
	assert_int_equal(cidr_parse("192.0.2.0/24", &nets[2]), 0);
	assert_int_equal(cidr_parse("2001:db8::/32", &nets[3]), 0);

	static const struct { const char *addr; int n; bool match; } cases[] = {
		{ "127.0.0.1", 4, true },   { "127.0.0.1", 1, true },    { "127.0.0.1", 0, false },
		{ "127.0.0.1", -1, false }, { "::1", 4, true },          { "::1", 1, false },
		{ "::1", 2, true },         { "192.0.2.9", 2, false },   { "192.0.2.9", 3, true },
		{ "2001:db8::9", 3, false }, { "2001:db8::9", 4, true }, { "198.51.100.1", 4, false },
		{ "::ffff:192.0.2.9", 4, true }, { "::ffff:198.51.100.1", 4, false }, { "::2", 4, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_sockaddr(cases[i].addr, &u);
		if (cidr_match_any(nets, cases[i].n, &u.sa) != cases[i].match)
			fail_msg("case %zu: %s among %d networks: %d", i, cases[i].addr, cases[i].n,
				 !cases[i].match);
	}
	assert_false(cidr_match_any(NULL, 0, &u.sa));

	/* other address families never match */
	memset(&u, 0, sizeof(u));
	u.un.sun_family = AF_UNIX;
	strcpy(u.un.sun_path, "/run/postern.sock");
	assert_false(cidr_match_any(nets, 4, &u.sa));
	struct cidr all4, all6;
	assert_int_equal(cidr_parse("0.0.0.0/0", &all4), 0);
	assert_int_equal(cidr_parse("::/0", &all6), 0);
	assert_false(cidr_match(&all4, &u.sa));
	assert_false(cidr_match(&all6, &u.sa));
	u.sa.sa_family = AF_UNSPEC;
	assert_false(cidr_match(&all4, &u.sa));
	assert_false(cidr_match(&all6, &u.sa));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_parse_long),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_cidr_match_every_prefix),
		cmocka_unit_test(test_cidr_match_any),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
