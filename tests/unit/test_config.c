/* Unit tests for the configuration module: the defaults table, every value type, the line
   parser, error reports and the dump. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define MAX_ERRORS 6

/* A text with its length, so that a case may hold a NUL byte. */
#define TEXT(s) .text = (s), .len = sizeof(s) - 1

static struct config *parse_ok(const char *text, size_t len)
{
	struct config *conf = NULL;
	char *errors = NULL;

	if (config_parse("t.conf", text, len, &conf, &errors) < 0) {
		print_error("unexpected errors for:\n%s\n---\n%s\n", text, errors);
		free(errors);
		fail();
	}
	assert_null(errors);
	assert_non_null(conf);
	return conf;
}

static char *dump(const struct config *conf, bool verbose)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	config_dump(conf, f, verbose);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* Whether text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
	}
	return false;
}

static size_t count_lines(const char *text)
{
	size_t n = 1;

	for (; *text != '\0'; text++)
		n += *text == '\n';
	return n;
}

/* ---- parsed values, checked through the dump line of their setting ---- */

struct value_case {
	const char *text;
	size_t len;
	const char *line; /* expected in the dump */
};

static const struct value_case value_cases[] = {
	/* sizes */
	{ TEXT("message_size_limit = 1024"), "message_size_limit = 1024" },
	{ TEXT("message_size_limit = 10k"), "message_size_limit = 10240" },
	{ TEXT("message_size_limit = 10K"), "message_size_limit = 10240" },
	{ TEXT("message_size_limit = 1m"), "message_size_limit = 1048576" },
	{ TEXT("message_size_limit = 1M"), "message_size_limit = 1048576" },
	{ TEXT("message_size_limit = 2g"), "message_size_limit = 2147483648" },
	{ TEXT("message_size_limit = 2G"), "message_size_limit = 2147483648" },
	{ TEXT("message_size_limit = 1k"), "message_size_limit = 1024" },
	{ TEXT("header_size_limit = 16M"), "header_size_limit = 16777216" },
	{ TEXT("disk_reserve = 1T"), "disk_reserve = 1099511627776" },
	{ TEXT("disk_reserve = 1t"), "disk_reserve = 1099511627776" },
	{ TEXT("disk_reserve = 0"), "disk_reserve = 0" },
	{ TEXT("disk_reserve = 007"), "disk_reserve = 7" },
	/* durations */
	{ TEXT("smtp_timeout = 90"), "smtp_timeout = 90" },
	{ TEXT("smtp_timeout = 90s"), "smtp_timeout = 90" },
	{ TEXT("smtp_timeout = 2m"), "smtp_timeout = 120" },
	{ TEXT("smtp_timeout = 1h"), "smtp_timeout = 3600" },
	{ TEXT("smtp_timeout = 1s"), "smtp_timeout = 1" },
	{ TEXT("shutdown_timeout = 0"), "shutdown_timeout = 0" },
	{ TEXT("shutdown_timeout = 0s"), "shutdown_timeout = 0" },
	{ TEXT("pickup_interval = 60m"), "pickup_interval = 3600" },
	/* integers at both ends of their ranges */
	{ TEXT("recipient_limit = 1"), "recipient_limit = 1" },
	{ TEXT("recipient_limit = 100000"), "recipient_limit = 100000" },
	{ TEXT("line_length_limit = 1000"), "line_length_limit = 1000" },
	{ TEXT("line_length_limit = 1048576"), "line_length_limit = 1048576" },
	{ TEXT("smtp_max_connections = 100000"), "smtp_max_connections = 100000" },
	{ TEXT("smtp_max_connections_per_ip = 1"), "smtp_max_connections_per_ip = 1" },
	{ TEXT("smtp_error_limit = 1000"), "smtp_error_limit = 1000" },
	/* strings and paths */
	{ TEXT("hostname = mail.example.com"), "hostname = mail.example.com" },
	{ TEXT("hostname ="), "hostname =" },
	{ TEXT("hostname = a#b"), "hostname = a#b" },
	{ TEXT("hostname = # kept, not a comment"), "hostname = # kept, not a comment" },
	{ TEXT("state_dir = var"), "state_dir = var" },
	{ TEXT("state_dir = /srv/my spool"), "state_dir = /srv/my spool" },
	{ TEXT("state_dir = /srv/a=b"), "state_dir = /srv/a=b" },
	{ TEXT("state_dir = /srv/\xc3\xa9t\xc3\xa9"), "state_dir = /srv/\xc3\xa9t\xc3\xa9" },
	/* log levels, stored lower-cased */
	{ TEXT("log_level = debug"), "log_level = debug" },
	{ TEXT("log_level = WARN"), "log_level = warn" },
	{ TEXT("log_level = Error"), "log_level = error" },
	/* domain lists */
	{ TEXT("relay_domains = example.com"), "relay_domains = example.com" },
	{ TEXT("relay_domains = Example.COM, *.Robots.Example.com"),
	  "relay_domains = example.com, *.robots.example.com" },
	{ TEXT("relay_domains = a.test b.test,c.test ,, d.test\t e-1.test"),
	  "relay_domains = a.test, b.test, c.test, d.test, e-1.test" },
	{ TEXT("relay_domains = localhost xn--bcher-kva.test 3com.test"),
	  "relay_domains = localhost, xn--bcher-kva.test, 3com.test" },
	{ TEXT("relay_domains ="), "relay_domains =" },
	{ TEXT("relay_domains = , ,"), "relay_domains =" },
	/* CIDR lists, normalised to address/prefix */
	{ TEXT("mynetworks = 10.0.0.0/8 192.168.1.1"), "mynetworks = 10.0.0.0/8, 192.168.1.1/32" },
	{ TEXT("mynetworks = [::1]/128"), "mynetworks = ::1/128" },
	{ TEXT("mynetworks = ::1/128"), "mynetworks = ::1/128" },
	{ TEXT("mynetworks = [::1]"), "mynetworks = ::1/128" },
	{ TEXT("mynetworks = ::1"), "mynetworks = ::1/128" },
	{ TEXT("mynetworks = 2001:DB8:0:0::/32"), "mynetworks = 2001:db8::/32" },
	{ TEXT("mynetworks = [2001:db8::]/32"), "mynetworks = 2001:db8::/32" },
	{ TEXT("mynetworks = 0.0.0.0/0, ::/0"), "mynetworks = 0.0.0.0/0, ::/0" },
	{ TEXT("mynetworks = 10.1.2.3/32"), "mynetworks = 10.1.2.3/32" },
	{ TEXT("mynetworks = 172.16.0.0/012"), "mynetworks = 172.16.0.0/12" },
	{ TEXT("mynetworks = ::ffff:10.0.0.0/104"), "mynetworks = ::ffff:10.0.0.0/104" },
	{ TEXT("mynetworks ="), "mynetworks =" },
	/* listen lists */
	{ TEXT("smtp_listen = 0.0.0.0:25, [::]:25"), "smtp_listen = 0.0.0.0:25, [::]:25" },
	{ TEXT("smtp_listen = localhost:2525 mail.example.com:587"),
	  "smtp_listen = localhost:2525, mail.example.com:587" },
	{ TEXT("smtp_listen = [2001:db8::1]:65535 127.0.0.1:1"),
	  "smtp_listen = [2001:db8::1]:65535, 127.0.0.1:1" },
	{ TEXT("smtp_listen ="), "smtp_listen =" },
	{ TEXT("lmtp_listen = unix:/run/postern/lmtp.sock, unix:var/lmtp.sock"),
	  "lmtp_listen = unix:/run/postern/lmtp.sock, unix:var/lmtp.sock" },
	/* syntax: spacing around '=', comments, continuation lines, line endings */
	{ TEXT("smtp_timeout=5"), "smtp_timeout = 5" },
	{ TEXT("smtp_timeout   =\t  5 \t "), "smtp_timeout = 5" },
	{ TEXT("smtp_timeout\t=5\n"), "smtp_timeout = 5" },
	{ TEXT("# comment\n   # indented comment\n\n \t \nsmtp_timeout = 5\n#"), "smtp_timeout = 5" },
	{ TEXT("#smtp_timeout = 7\nsmtp_timeout = 5"), "smtp_timeout = 5" },
	{ TEXT("hostname = a\n  b\n\tc"), "hostname = a b c" },
	{ TEXT("hostname =\n  b"), "hostname = b" },
	{ TEXT("hostname\n  = b"), "hostname = b" },
	{ TEXT("mynetworks = 10.0.0.0/8,\n\t192.168.0.0/16\n  # between\n\n  172.16.0.0/12\n"),
	  "mynetworks = 10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12" },
	{ TEXT("smtp_timeout = 5\r\nhostname = x\r\n"), "hostname = x" },
	{ TEXT("hostname = x\r\n  y\r\n"), "hostname = x y" },
	{ TEXT("hostname = x\r"), "hostname = x" },
	{ TEXT("\xef\xbb\xbfhostname = bom.test\n"), "hostname = bom.test" },
	{ TEXT("tls_cert_file = /etc/c.pem\ntls_key_file = /etc/k.pem"),
	  "tls_key_file = /etc/k.pem" },
	{ TEXT(""), "smtp_timeout = 300" },
	{ TEXT("\n\n\n"), "smtp_timeout = 300" },
};

static void test_values(void **state)
{
	for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
		const struct value_case *c = &value_cases[i];
		struct config *conf = parse_ok(c->text, c->len);
		char *out = dump(conf, false);
		if (!has_line(out, c->line)) {
			print_error("case %zu: no line \"%s\" in dump:\n%s\n", i, c->line, out);
			fail();
		}
		free(out);
		config_free(&conf);
		assert_null(conf);
	}
}

/* ---- errors: each expected substring must be on its own line, in order, and no more ---- */

struct error_case {
	const char *text;
	size_t len;
	const char *errors[MAX_ERRORS];
};

static const struct error_case error_cases[] = {
	/* numbers: syntax, suffixes, overflow, ranges */
	{ TEXT("smtp_timeout = 2h"), { "t.conf:1: smtp_timeout: 2h is out of range 1s..1h" } },
	{ TEXT("smtp_timeout = 0"), { "t.conf:1: smtp_timeout: 0 is out of range 1s..1h" } },
	{ TEXT("smtp_timeout = 3601"), { "t.conf:1: smtp_timeout: 3601 is out of range" } },
	{ TEXT("pickup_interval = 1d"), { "t.conf:1: pickup_interval: 1d is out of range 1s..1h" } },
	{ TEXT("smtp_timeout = 5x"), { "t.conf:1: smtp_timeout: \"5x\": bad time suffix" } },
	{ TEXT("smtp_timeout = 5M"), { "t.conf:1: smtp_timeout: \"5M\": bad time suffix" } },
	{ TEXT("smtp_timeout = 5 s"), { "smtp_timeout: \"5 s\": bad time suffix" } },
	{ TEXT("smtp_timeout = 5ss"), { "smtp_timeout: \"5ss\": bad time suffix" } },
	{ TEXT("smtp_timeout = s"), { "t.conf:1: smtp_timeout: \"s\": not a number" } },
	{ TEXT("smtp_timeout ="), { "t.conf:1: smtp_timeout: \"\": empty value" } },
	{ TEXT("smtp_timeout = -5"), { "smtp_timeout: \"-5\": not a number" } },
	{ TEXT("smtp_timeout = +5"), { "smtp_timeout: \"+5\": not a number" } },
	{ TEXT("message_size_limit = 99999999999999999999G"),
	  { "t.conf:1: message_size_limit: \"99999999999999999999G\": number too large" } },
	{ TEXT("message_size_limit = 9223372036854775808"), { "number too large" } },
	{ TEXT("message_size_limit = 9999999999G"), { "number too large" } },
	{ TEXT("message_size_limit = 8589934591G"), { "8589934591G is out of range 1k..2G" } },
	{ TEXT("message_size_limit = 9223372036854775807"), { "is out of range 1k..2G" } },
	{ TEXT("message_size_limit = 2049M"), { "t.conf:1: message_size_limit: 2049M is out of range 1k..2G" } },
	{ TEXT("message_size_limit = 1023"), { "message_size_limit: 1023 is out of range 1k..2G" } },
	{ TEXT("message_size_limit = 1.5M"), { "message_size_limit: \"1.5M\": bad size suffix" } },
	{ TEXT("message_size_limit = 10MB"), { "message_size_limit: \"10MB\": bad size suffix" } },
	{ TEXT("message_size_limit = 0x10"), { "message_size_limit: \"0x10\": bad size suffix" } },
	{ TEXT("header_size_limit = 17M"), { "header_size_limit: 17M is out of range 1k..16M" } },
	{ TEXT("disk_reserve = 1025G"), { "disk_reserve: 1025G is out of range 0..1T" } },
	{ TEXT("recipient_limit = 10k"), { "t.conf:1: recipient_limit: \"10k\": not a number" } },
	{ TEXT("recipient_limit = 0"), { "recipient_limit: 0 is out of range 1..100000" } },
	{ TEXT("recipient_limit = 100001"), { "recipient_limit: 100001 is out of range 1..100000" } },
	{ TEXT("line_length_limit = 999"), { "line_length_limit: 999 is out of range 1000..1048576" } },
	{ TEXT("smtp_error_limit = ten"), { "smtp_error_limit: \"ten\": not a number" } },
	/* strings, paths, log level */
	{ TEXT("state_dir ="), { "t.conf:1: state_dir: must not be empty" } },
	{ TEXT("log_level = verbose"), { "t.conf:1: log_level: \"verbose\": not a log level" } },
	{ TEXT("log_level ="), { "log_level: \"\": not a log level" } },
	/* CIDR lists: every bad item is named */
	{ TEXT("mynetworks = 10.0.0.0/33"),
	  { "t.conf:1: mynetworks: \"10.0.0.0/33\": prefix length must be 0..32" } },
	{ TEXT("mynetworks = ::/129"), { "mynetworks: \"::/129\": prefix length must be 0..128" } },
	{ TEXT("mynetworks = 10.1.0.0/8"),
	  { "mynetworks: \"10.1.0.0/8\": address bits set past the prefix length" } },
	{ TEXT("mynetworks = 10.0.0.0/8 foo ::1/129"),
	  { "t.conf:1: mynetworks: \"foo\": not an IPv4 or IPv6",
	    "t.conf:1: mynetworks: \"::1/129\": prefix length" } },
	{ TEXT("mynetworks = [10.0.0.1]"), { "mynetworks: \"[10.0.0.1]\": not an IPv4 or IPv6" } },
	{ TEXT("mynetworks = 10.0.0.0/"), { "mynetworks: \"10.0.0.0/\": prefix length" } },
	{ TEXT("mynetworks = 10.0.0.0/x"), { "mynetworks: \"10.0.0.0/x\": prefix length" } },
	{ TEXT("mynetworks = 10.0.0.0/-1"), { "mynetworks: \"10.0.0.0/-1\": prefix length" } },
	{ TEXT("mynetworks = 10.0.0.0/0008"), { "prefix length" } },
	{ TEXT("mynetworks = 1.2.3.4/8/8"), { "mynetworks: \"1.2.3.4/8/8\"" } },
	{ TEXT("mynetworks = /8"), { "mynetworks: \"/8\": not an IPv4 or IPv6" } },
	{ TEXT("mynetworks = 10/8"), { "mynetworks: \"10/8\": not an IPv4 or IPv6" } },
	{ TEXT("mynetworks = 256.0.0.0/8"), { "not an IPv4 or IPv6" } },
	{ TEXT("mynetworks = fe80::1%eth0"), { "mynetworks: \"fe80::1%eth0\": not an IPv4" } },
	{ TEXT("mynetworks = [::1"), { "mynetworks: \"[::1\": not an IPv4" } },
	{ TEXT("mynetworks = []"), { "mynetworks: \"[]\": not an IPv4" } },
	/* listen lists */
	{ TEXT("smtp_listen = 127.0.0.1"), { "t.conf:1: smtp_listen: \"127.0.0.1\": missing :port" } },
	{ TEXT("smtp_listen = 127.0.0.1:0"), { "smtp_listen: \"127.0.0.1:0\": port must be" } },
	{ TEXT("smtp_listen = 127.0.0.1:65536"), { "smtp_listen: \"127.0.0.1:65536\": port must" } },
	{ TEXT("smtp_listen = 127.0.0.1:"), { "smtp_listen: \"127.0.0.1:\": port must" } },
	{ TEXT("smtp_listen = 127.0.0.1:smtp"), { "smtp_listen: \"127.0.0.1:smtp\": port must" } },
	{ TEXT("smtp_listen = ::1:25"), { "smtp_listen: \"::1:25\": write an IPv6 address in brackets" } },
	{ TEXT("smtp_listen = [::1]"), { "smtp_listen: \"[::1]\": port must" } },
	{ TEXT("smtp_listen = [127.0.0.1]:25"), { "smtp_listen: \"[127.0.0.1]:25\": not an IP address" } },
	{ TEXT("smtp_listen = []:25"), { "smtp_listen: \"[]:25\": not an IP address" } },
	{ TEXT("smtp_listen = 999.1.1.1:25"), { "smtp_listen: \"999.1.1.1:25\": not an IP address" } },
	{ TEXT("smtp_listen = bad_host:25"), { "smtp_listen: \"bad_host:25\": not a host name" } },
	{ TEXT("smtp_listen = :25"), { "smtp_listen: \":25\": missing host" } },
	{ TEXT("lmtp_listen = unix:"), { "t.conf:1: lmtp_listen: \"unix:\": missing socket path" } },
	{ TEXT("lmtp_listen = unix:/" "0123456789012345678901234567890123456789"
	       "0123456789012345678901234567890123456789" "01234567890123456789012345678"),
	  { "socket path longer than 107 bytes" } },
	{ TEXT("smtp_listen = 127.0.0.1:25 x 127.0.0.1:99999"),
	  { "smtp_listen: \"x\": missing :port", "smtp_listen: \"127.0.0.1:99999\": port" } },
	/* domain lists */
	{ TEXT("relay_domains = *"), { "t.conf:1: relay_domains: \"*\": not a domain" } },
	{ TEXT("relay_domains = *."), { "relay_domains: \"*.\": not a domain" } },
	{ TEXT("relay_domains = a..b"), { "relay_domains: \"a..b\": not a domain" } },
	{ TEXT("relay_domains = -a.test"), { "relay_domains: \"-a.test\": not a domain" } },
	{ TEXT("relay_domains = a-.test"), { "relay_domains: \"a-.test\": not a domain" } },
	{ TEXT("relay_domains = example.com."), { "relay_domains: \"example.com.\": not a domain" } },
	{ TEXT("relay_domains = 192.0.2.1"), { "relay_domains: \"192.0.2.1\": not a domain" } },
	{ TEXT("relay_domains = under_score.test"), { "\"under_score.test\": not a domain" } },
	{ TEXT("relay_domains = x.*.test"), { "\"x.*.test\": not a domain" } },
	/* '#' inside a value is kept, so a trailing "comment" becomes list items */
	{ TEXT("relay_domains = a.test # trailing words"),
	  { "t.conf:1: relay_domains: \"#\": not a domain" } },
	{ TEXT("mynetworks = 10.0.0.0/8 # office"),
	  { "mynetworks: \"#\": not an IPv4", "mynetworks: \"office\": not an IPv4" } },
	{ TEXT("relay_domains = a234567890123456789012345678901234567890123456789012345678901234.test"),
	  { "not a domain" } },
	/* line syntax */
	{ TEXT("smtp_timout = 5"), { "t.conf:1: smtp_timout: unknown setting" } },
	{ TEXT("SMTP_TIMEOUT = 5"), { "t.conf:1: SMTP_TIMEOUT: unknown setting" } },
	{ TEXT("smtp timeout = 5"), { "t.conf:1: smtp timeout: unknown setting" } },
	{ TEXT("smtp_timeout 30"), { "t.conf:1: missing '=' in \"smtp_timeout 30\"" } },
	{ TEXT("= 5"), { "t.conf:1: missing setting name before '='" } },
	{ TEXT("  smtp_timeout = 5"), { "t.conf:1: continuation line with no setting before it" } },
	{ TEXT("# c\n\n  x = 1\n  y = 2"), { "t.conf:3: continuation line with no setting" } },
	{ TEXT("smtp_timeout = 5\nsmtp_timeout = 6"),
	  { "t.conf:2: smtp_timeout: set twice, first at line 1" } },
	{ TEXT("smtp_timeout = 5\n\nsmtp_timeout = 2h\nsmtp_timeout = 7"),
	  { "t.conf:3: smtp_timeout: set twice, first at line 1",
	    "t.conf:3: smtp_timeout: 2h is out of range",
	    "t.conf:4: smtp_timeout: set twice, first at line 1" } },
	{ TEXT("smtp_timeout = x\nsmtp_timeout = 6"),
	  { "t.conf:1: smtp_timeout: \"x\"", "t.conf:2: smtp_timeout: set twice, first at line 1" } },
	/* TLS needs both files */
	{ TEXT("tls_cert_file = /c.pem"), { "t.conf:1: tls_cert_file: set without tls_key_file" } },
	{ TEXT("hostname = x\ntls_key_file = /k.pem"),
	  { "t.conf:2: tls_key_file: set without tls_cert_file" } },
	{ TEXT("tls_cert_file = /c.pem\ntls_key_file ="),
	  { "t.conf:1: tls_cert_file: set without tls_key_file" } },
	/* bytes the parser refuses */
	{ TEXT("hostname = a\0b\n"), { "t.conf:1: NUL byte in line" } },
	{ TEXT("# a comment\0 too\n"), { "t.conf:1: NUL byte in line" } },
	{ TEXT("\0"), { "t.conf:1: NUL byte in line" } },
	{ TEXT("hostname = a\x01z"), { "t.conf:1: control character 0x01 in line" } },
	{ TEXT("hostname = a\rb"), { "t.conf:1: control character 0x0d in line" } },
	{ TEXT("hostname = a\x7f"), { "t.conf:1: control character 0x7f in line" } },
	{ TEXT("hostname = x\r\r\n"), { "t.conf:1: control character 0x0d in line" } },
	{ TEXT("\fhostname = x"), { "t.conf:1: control character 0x0c in line" } },
	/* a refused line voids its setting, continuation lines included, and nothing more */
	{ TEXT("mynetworks = 10.0.0.0/8,\n  b\0ad\n  also bad\nfoo = 1"),
	  { "t.conf:2: NUL byte in line", "t.conf:4: foo: unknown setting" } },
	{ TEXT("x\0 = 1\n  more\nrecipient_limit = 0"),
	  { "t.conf:1: NUL byte in line", "t.conf:3: recipient_limit: 0 is out of range" } },
	{ TEXT("  \0\n  more\n"), { "t.conf:1: NUL byte in line" } },
	{ TEXT("smtp_listen = nope\n  x\0\n"), { "t.conf:2: NUL byte in line" } },
	/* many problems at once, each at its own line; values spanning lines at their first */
	{ TEXT("smtp_timeout = 2h\nfoo = 1\n\nrecipient_limit = x\n  # comment\n"
	       "mynetworks = bad\nsmtp_timeout = 1\nno equals here"),
	  { "t.conf:1: smtp_timeout: 2h is out of range 1s..1h", "t.conf:2: foo: unknown setting",
	    "t.conf:4: recipient_limit: \"x\": not a number", "t.conf:6: mynetworks: \"bad\"",
	    "t.conf:7: smtp_timeout: set twice, first at line 1", "t.conf:8: missing '='" } },
	{ TEXT("mynetworks = 10.0.0.0/8,\n  bad,\n  ::1\nfoo = 1\r\nbar=2\r\n"),
	  { "t.conf:1: mynetworks: \"bad\"", "t.conf:4: foo: unknown setting",
	    "t.conf:5: bar: unknown setting" } },
	{ TEXT("a = 1\r\nb = 2\r\n\r\nc = 3"),
	  { "t.conf:1: a:", "t.conf:2: b:", "t.conf:4: c:" } },
};

static void check_errors(size_t i, const struct error_case *c, const char *errors)
{
	size_t want = 0;
	const char *line = errors;

	while (want < MAX_ERRORS && c->errors[want] != NULL)
		want++;
	if (count_lines(errors) != want) {
		print_error("case %zu: want %zu errors, got:\n%s\n", i, want, errors);
		fail();
	}
	for (size_t k = 0; k < want; k++) {
		const char *end = strchr(line, '\n');
		char *one = end ? xstrndup(line, (size_t)(end - line)) : xstrdup(line);
		if (strstr(one, c->errors[k]) == NULL) {
			print_error("case %zu: error %zu is \"%s\", want \"%s\"\n", i, k, one,
				    c->errors[k]);
			fail();
		}
		free(one);
		line = end ? end + 1 : "";
	}
}

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		struct config *conf = (struct config *)&conf; /* must be reset to NULL */
		char *errors = NULL;
		if (config_parse("t.conf", c->text, c->len, &conf, &errors) == 0) {
			print_error("case %zu: parsed, want error \"%s\"\n", i, c->errors[0]);
			config_free(&conf);
			fail();
		}
		assert_null(conf);
		assert_non_null(errors);
		check_errors(i, c, errors);
		free(errors);
	}
}

/* ---- the exported value parsers ---- */

struct bool_case {
	const char *text;
	int ret;
	bool value;
};

static const struct bool_case bool_cases[] = {
	{ "yes", 0, true }, { "YES", 0, true }, { "true", 0, true }, { "True", 0, true },
	{ "on", 0, true }, { "1", 0, true }, { "no", 0, false }, { "No", 0, false },
	{ "false", 0, false }, { "FALSE", 0, false }, { "off", 0, false }, { "0", 0, false },
	{ "", -1, false }, { "y", -1, false }, { "2", -1, false }, { "yes ", -1, false },
	{ "enable", -1, false }, { "onn", -1, false },
};

static void test_bool(void **state)
{
	for (size_t i = 0; i < sizeof(bool_cases) / sizeof(bool_cases[0]); i++) {
		bool value = !bool_cases[i].value;
		int ret = config_parse_bool(bool_cases[i].text, &value);
		if (ret != bool_cases[i].ret || (ret == 0 && value != bool_cases[i].value)) {
			print_error("case %zu: \"%s\" gave %d/%d\n", i, bool_cases[i].text, ret, value);
			fail();
		}
	}
}

struct number_case {
	bool duration;
	const char *text;
	int64_t value;     /* when error is NULL */
	const char *error; /* substring */
};

static const struct number_case number_cases[] = {
	{ false, "0", 0, NULL },
	{ false, "1k", 1024, NULL },
	{ false, "3K", 3072, NULL },
	{ false, "5m", 5242880, NULL },
	{ false, "5M", 5242880, NULL },
	{ false, "7g", INT64_C(7516192768), NULL },
	{ false, "2T", INT64_C(2199023255552), NULL },
	{ false, "9223372036854775807", INT64_MAX, NULL },
	{ false, "8388607T", INT64_C(8388607) * 1024 * 1024 * 1024 * 1024, NULL },
	{ false, "8388608T", 0, "too large" },
	{ false, "9223372036854775808", 0, "too large" },
	{ false, "99999999999999999999G", 0, "too large" },
	{ false, "99999999999999999999", 0, "too large" },
	{ false, "", 0, "empty" },
	{ false, "k", 0, "not a number" },
	{ false, "1kb", 0, "bad size suffix" },
	{ false, "1s", 0, "bad size suffix" },
	{ false, "1 k", 0, "bad size suffix" },
	{ true, "0", 0, NULL },
	{ true, "45", 45, NULL },
	{ true, "45s", 45, NULL },
	{ true, "3m", 180, NULL },
	{ true, "2h", 7200, NULL },
	{ true, "7d", 604800, NULL },
	{ true, "106751991167300d", INT64_C(106751991167300) * 86400, NULL },
	{ true, "106751991167301d", 0, "too large" },
	{ true, "1w", 0, "bad time suffix" },
	{ true, "1H", 0, "bad time suffix" },
	{ true, "1D", 0, "bad time suffix" },
	{ true, "1ms", 0, "bad time suffix" },
	{ true, "-1", 0, "not a number" },
	{ true, "1.5h", 0, "bad time suffix" },
};

static void test_numbers(void **state)
{
	for (size_t i = 0; i < sizeof(number_cases) / sizeof(number_cases[0]); i++) {
		const struct number_case *c = &number_cases[i];
		int64_t value = -1;
		const char *error = NULL;
		int ret = c->duration ? config_parse_duration(c->text, &value, &error)
				      : config_parse_size(c->text, &value, &error);
		if (c->error == NULL && (ret != 0 || value != c->value)) {
			print_error("case %zu: \"%s\": %d %s\n", i, c->text, ret, error);
			fail();
		}
		if (c->error != NULL && (ret != -1 || strstr(error, c->error) == NULL)) {
			print_error("case %zu: \"%s\": %d %s\n", i, c->text, ret, error);
			fail();
		}
	}
}

/* ---- whole configurations ---- */

static void test_defaults(void **state)
{
	struct config *conf = config_defaults();

	assert_string_equal(conf->config_file, "");
	assert_string_equal(conf->state_dir, "/var/lib/postern");
	assert_string_equal(conf->hostname, "");
	assert_string_equal(conf->smtp_listen[0], "127.0.0.1:2525");
	assert_null(conf->smtp_listen[1]);
	assert_string_equal(conf->lmtp_listen[0], "127.0.0.1:2424");
	assert_null(conf->lmtp_listen[1]);
	assert_non_null(conf->relay_domains);
	assert_null(conf->relay_domains[0]);
	assert_string_equal(conf->mynetworks[0], "127.0.0.0/8");
	assert_string_equal(conf->mynetworks[1], "::1/128");
	assert_null(conf->mynetworks[2]);
	assert_int_equal(conf->message_size_limit, 25 * 1024 * 1024);
	assert_int_equal(conf->recipient_limit, 1000);
	assert_int_equal(conf->line_length_limit, 1000);
	assert_int_equal(conf->header_size_limit, 100 * 1024);
	assert_int_equal(conf->smtp_max_connections, 500);
	assert_int_equal(conf->smtp_max_connections_per_ip, 50);
	assert_int_equal(conf->smtp_timeout, 300);
	assert_int_equal(conf->smtp_error_limit, 10);
	assert_int_equal(conf->disk_reserve, 100 * 1024 * 1024);
	assert_string_equal(conf->tls_cert_file, "");
	assert_string_equal(conf->tls_key_file, "");
	assert_string_equal(conf->log_level, "info");
	assert_int_equal(conf->shutdown_timeout, 30);
	assert_int_equal(conf->pickup_interval, 1);
	config_free(&conf);
	config_free(&conf); /* NULL is fine */
}

static const char full_text[] =
	"# every setting, some over several lines\n"
	"state_dir = /srv/postern\n"
	"hostname = mx.example.test\n"
	"smtp_listen = 0.0.0.0:25 [::]:25\n"
	"lmtp_listen = unix:/run/postern/lmtp.sock,\n"
	"\t127.0.0.1:2424\n"
	"relay_domains = example.test, *.Robots.Example.Test\n"
	"mynetworks = 10.0.0.0/8, 192.168.0.0/16, [2001:db8::]/32, 127.0.0.1\n"
	"message_size_limit = 50M\n"
	"recipient_limit = 200\n"
	"line_length_limit = 2000\n"
	"header_size_limit = 1M\n"
	"smtp_max_connections = 1000\n"
	"smtp_max_connections_per_ip = 20\n"
	"smtp_timeout = 5m\n"
	"smtp_error_limit = 5\n"
	"disk_reserve = 1G\n"
	"tls_cert_file = /etc/postern/cert.pem\n"
	"tls_key_file = /etc/postern/key.pem\n"
	"log_level = debug\n"
	"shutdown_timeout = 0\n"
	"pickup_interval = 10s\n";

static void test_full(void **state)
{
	struct config *conf = parse_ok(full_text, sizeof(full_text) - 1);

	assert_string_equal(conf->config_file, "t.conf");
	assert_string_equal(conf->state_dir, "/srv/postern");
	assert_string_equal(conf->hostname, "mx.example.test");
	assert_string_equal(conf->smtp_listen[1], "[::]:25");
	assert_string_equal(conf->lmtp_listen[0], "unix:/run/postern/lmtp.sock");
	assert_string_equal(conf->lmtp_listen[1], "127.0.0.1:2424");
	assert_null(conf->lmtp_listen[2]);
	assert_string_equal(conf->relay_domains[1], "*.robots.example.test");
	assert_string_equal(conf->mynetworks[2], "2001:db8::/32");
	assert_string_equal(conf->mynetworks[3], "127.0.0.1/32");
	assert_int_equal(conf->message_size_limit, 50 * 1024 * 1024);
	assert_int_equal(conf->recipient_limit, 200);
	assert_int_equal(conf->line_length_limit, 2000);
	assert_int_equal(conf->header_size_limit, 1024 * 1024);
	assert_int_equal(conf->smtp_max_connections, 1000);
	assert_int_equal(conf->smtp_max_connections_per_ip, 20);
	assert_int_equal(conf->smtp_timeout, 300);
	assert_int_equal(conf->smtp_error_limit, 5);
	assert_int_equal(conf->disk_reserve, 1024 * 1024 * 1024);
	assert_string_equal(conf->tls_cert_file, "/etc/postern/cert.pem");
	assert_string_equal(conf->tls_key_file, "/etc/postern/key.pem");
	assert_string_equal(conf->log_level, "debug");
	assert_int_equal(conf->shutdown_timeout, 0);
	assert_int_equal(conf->pickup_interval, 10);
	config_free(&conf);
}

static const char default_dump[] =
	"state_dir = /var/lib/postern\n"
	"hostname =\n"
	"smtp_listen = 127.0.0.1:2525\n"
	"lmtp_listen = 127.0.0.1:2424\n"
	"relay_domains =\n"
	"mynetworks = 127.0.0.0/8, ::1/128\n"
	"message_size_limit = 26214400\n"
	"recipient_limit = 1000\n"
	"line_length_limit = 1000\n"
	"header_size_limit = 102400\n"
	"smtp_max_connections = 500\n"
	"smtp_max_connections_per_ip = 50\n"
	"smtp_timeout = 300\n"
	"smtp_error_limit = 10\n"
	"disk_reserve = 104857600\n"
	"tls_cert_file =\n"
	"tls_key_file =\n"
	"log_level = info\n"
	"shutdown_timeout = 30\n"
	"pickup_interval = 1\n"
	"admin_socket =\n"
	"delivery_paused = no\n"
	"relayhost =\n"
	"dns_servers =\n"
	"dns_timeout = 5\n"
	"qmgr_message_active_limit = 20000\n"
	"delivery_process_limit = 100\n"
	"default_destination_concurrency_limit = 20\n"
	"initial_destination_concurrency = 5\n"
	"destination_recipient_limit = 50\n"
	"queue_run_delay = 300\n"
	"minimal_backoff_time = 300\n"
	"maximal_backoff_time = 4000\n"
	"maximal_queue_lifetime = 432000\n"
	"bounce_queue_lifetime = 432000\n"
	"delay_warning_time = 0\n"
	"archive_undeliverable = no\n"
	"smtp_tls_security_level = may\n"
	"smtp_connect_timeout = 30\n"
	"smtp_helo_timeout = 300\n"
	"smtp_command_timeout = 300\n"
	"smtp_data_timeout = 180\n"
	"smtp_data_done_timeout = 600\n"
	"smtp_connection_reuse_time = 300\n"
	"rewrite_rules =\n"
	"rewrite_headers = no\n"
	"transport_rules =\n"
	"transport_variables =\n"
	"recipient_delimiter = +\n"
	"alias_max_depth = 10\n"
	"store = sqlite\n";

static void test_dump_defaults(void **state)
{
	struct config *conf = config_defaults();
	char *out = dump(conf, false);

	assert_string_equal(out, default_dump);
	free(out);
	out = dump(conf, true);
	assert_true(has_line(out, "# postern configuration, from built-in defaults"));
	assert_true(has_line(out, "# Largest message accepted, in bytes."));
	assert_true(has_line(out, "# default: 25M; range: 1k..2G"));
	assert_true(has_line(out, "# default: 300s; range: 1s..1h"));
	assert_true(has_line(out, "# default: 100M; range: 0..1T"));
	assert_true(has_line(out, "# default: 1000; range: 1000..1048576"));
	assert_true(has_line(out, "# default: 127.0.0.0/8, [::1]/128"));
	assert_true(has_line(out, "# default: (empty)"));
	assert_true(strstr(out, "# default: info\nlog_level = info\n\n# ") != NULL);
	free(out);
	config_free(&conf);
}

/* Dumping, parsing the dump and dumping again must give the same text, both ways. */
static void check_round_trip(const char *text, size_t len)
{
	struct config *conf = parse_ok(text, len);
	char *first = dump(conf, false);
	char *verbose = dump(conf, true);
	struct config *again = parse_ok(first, strlen(first));
	struct config *from_verbose = parse_ok(verbose, strlen(verbose));
	char *second = dump(again, false);
	char *third = dump(from_verbose, false);

	assert_string_equal(first, second);
	assert_string_equal(first, third);
	free(first);
	free(second);
	free(third);
	free(verbose);
	config_free(&conf);
	config_free(&again);
	config_free(&from_verbose);
}

static void test_dump_round_trip(void **state)
{
	check_round_trip(full_text, sizeof(full_text) - 1);
	check_round_trip("", 0);
	for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++)
		check_round_trip(value_cases[i].text, value_cases[i].len);
}

/* A long list is wrapped onto continuation lines that parse back to the same list. */
static void test_dump_wraps_lists(void **state)
{
	struct buf text = { 0 };
	struct config *conf;
	char *out;

	buf_puts(&text, "relay_domains =");
	for (int i = 0; i < 60; i++)
		buf_printf(&text, " domain-number-%d.example.test", i);
	conf = parse_ok(buf_str(&text), text.len);
	out = dump(conf, false);
	assert_true(count_lines(out) > 25);
	for (const char *line = out; *line != '\0'; line = strchr(line, '\n') + 1)
		assert_true(strchr(line, '\n') - line <= 78);
	assert_non_null(strstr(out, ",\n\tdomain-number-"));
	check_round_trip(buf_str(&text), text.len);
	free(out);
	config_free(&conf);
	buf_free(&text);
}

static void test_long_lines(void **state)
{
	struct buf text = { 0 };
	char *errors = NULL;
	struct config *conf = NULL;

	/* A line of exactly the limit is read. */
	buf_puts(&text, "# ");
	while (text.len < 65536)
		buf_putc(&text, 'x');
	buf_puts(&text, "\nsmtp_timeout = 5\n");
	conf = parse_ok(buf_str(&text), text.len);
	assert_int_equal(conf->smtp_timeout, 5);
	config_free(&conf);

	buf_reset(&text);
	buf_puts(&text, "smtp_timeout = 5\nhostname = ");
	while (text.len < 17 + 65537)
		buf_putc(&text, 'x');
	buf_puts(&text, "\n  continued\nrecipient_limit = 0\n");
	assert_int_equal(config_parse("t.conf", buf_str(&text), text.len, &conf, &errors), -1);
	assert_string_equal(errors, "t.conf:2: line longer than 65536 bytes\n"
				    "t.conf:4: recipient_limit: 0 is out of range 1..100000");
	free(errors);

	buf_reset(&text);
	buf_puts(&text, "hostname = ");
	for (int i = 0; i < 256; i++)
		buf_putc(&text, 'h');
	assert_int_equal(config_parse("t.conf", buf_str(&text), text.len, &conf, &errors), -1);
	assert_string_equal(errors, "t.conf:1: hostname: longer than 255 bytes");
	free(errors);
	buf_free(&text);
}

/* A file full of junk gives a bounded report that says how much was left out. */
static void test_error_limit(void **state)
{
	struct buf text = { 0 };
	char *errors = NULL;
	struct config *conf = NULL;

	for (int i = 0; i < 150; i++)
		buf_printf(&text, "junk%d = 1\n", i);
	assert_int_equal(config_parse("t.conf", buf_str(&text), text.len, &conf, &errors), -1);
	assert_int_equal(count_lines(errors), 101);
	assert_non_null(strstr(errors, "t.conf:100: junk99: unknown setting\n"
				       "t.conf: 50 more errors not shown"));
	free(errors);
	buf_free(&text);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path);
	const char text[] = "smtp_timeout = 42\nlog_level = warn\n";
	struct config *conf = NULL;
	char *errors = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(config_load(path, &conf, &errors), 0);
	assert_null(errors);
	assert_string_equal(conf->config_file, path);
	assert_int_equal(conf->smtp_timeout, 42);
	assert_string_equal(conf->log_level, "warn");
	config_free(&conf);

	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "bogus = 1\n", 10), 10);
	close(fd);
	assert_int_equal(config_load(path, &conf, &errors), -1);
	assert_null(conf);
	char *want = xasprintf("%s:3: bogus: unknown setting", path);
	assert_string_equal(errors, want);
	free(want);
	free(errors);
	unlink(path);

	assert_int_equal(config_load(path, &conf, &errors), -1);
	assert_null(conf);
	want = xasprintf("%s: cannot read: No such file or directory", path);
	assert_string_equal(errors, want);
	free(want);
	free(errors);

	assert_int_equal(config_load("/", &conf, &errors), -1);
	assert_string_equal(errors, "/: cannot read: Is a directory");
	free(errors);
}

/* A config file is text; a huge one is refused before it fills memory. */
static void test_load_too_large(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX";
	int fd = mkstemp(path);
	struct config *conf = NULL;
	char *errors = NULL;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 * 1024 * 1024 + 1), 0);
	close(fd);
	assert_int_equal(config_load(path, &conf, &errors), -1);
	assert_null(conf);
	char *want = xasprintf("%s: cannot read: File too large", path);
	assert_string_equal(errors, want);
	free(want);
	free(errors);
	unlink(path);
}

/* The verbose dump names its file in a comment that must stay one line. */
static void test_dump_header(void **state)
{
	struct config *conf = NULL;
	char *errors = NULL;
	static const char text[] = "hostname = h.test\n";

	assert_int_equal(config_parse("odd\nname.conf", text, sizeof(text) - 1, &conf, &errors), 0);
	char *out = dump(conf, true);
	assert_true(has_line(out, "# postern configuration, from odd?name.conf"));
	config_free(&conf);
	conf = parse_ok(out, strlen(out));
	assert_string_equal(conf->hostname, "h.test");
	free(out);
	config_free(&conf);
}

/* ---- the shipped example and docs follow the table ---- */

/* A file of the source tree, found from this file's own name; NULL when not at hand. */
static char *source_file(const char *rel)
{
	const char *self = __FILE__;
	const char *tail = strstr(self, "tests/unit/test_config.c");

	if (tail == NULL)
		return NULL;
	char *path = xasprintf("%.*s%s", (int)(tail - self), self, rel);
	if (access(path, R_OK) != 0)
		xfree(&path);
	return path;
}

static char *read_file(const char *path)
{
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return b.data;
}

/* Each "#name = value" line (TLS aside, whose values are examples) shows the default. */
static void check_example_defaults(const char *text)
{
	struct config *defaults = config_defaults();
	char *want = dump(defaults, false);

	for (size_t len; *text != '\0'; text += len + (text[len] == '\n')) {
		len = strcspn(text, "\n");
		if (text[0] != '#' || text[1] < 'a' || text[1] > 'z' || strncmp(text, "#tls_", 5) == 0)
			continue;
		struct config *conf = parse_ok(text + 1, len - 1);
		char *got = dump(conf, false);
		assert_string_equal(got, want);
		free(got);
		config_free(&conf);
	}
	free(want);
	config_free(&defaults);
}

static void test_example(void **state)
{
	char *path = source_file("examples/postern.conf");
	struct config *conf = NULL;
	char *errors = NULL;

	if (path == NULL)
		skip();
	if (config_load(path, &conf, &errors) < 0)
		fail_msg("%s", errors);
	assert_string_equal(conf->state_dir, "var");
	assert_string_equal(conf->smtp_listen[0], "127.0.0.1:2525");
	assert_string_equal(conf->lmtp_listen[0], "127.0.0.1:2424");
	assert_string_equal(conf->lmtp_listen[1], "unix:var/lmtp.sock");
	assert_string_equal(conf->relay_domains[0], "example.test");
	config_free(&conf);
	char *text = read_file(path);
	check_example_defaults(text);
	free(text);
	free(path);
}

/* The section of docs for one setting holds its help, default and range as in the table. */
static void check_doc_setting(const char *doc, const char *name, const char *help,
			      const char *def, const char *range)
{
	char *heading = xasprintf("### `%s`\n\n%s\n", name, help);
	const char *section = strstr(doc, heading);
	if (section == NULL)
		fail_msg("docs: no \"%s\"", heading);
	const char *next = strstr(section + 1, "\n### ");
	char *text = xstrndup(section, next != NULL ? (size_t)(next - section) : strlen(section));
	char *want = strcmp(def, "(empty)") == 0 ? xstrdup("- default: empty\n")
						  : xasprintf("- default: `%s`\n", def);
	if (strstr(text, want) == NULL)
		fail_msg("docs: %s: no \"%s\"", name, want);
	free(want);
	want = range != NULL ? xasprintf("- range: `%s`\n", range) : xstrdup("- range: ");
	if ((strstr(text, want) != NULL) != (range != NULL))
		fail_msg("docs: %s: range should be %s", name, range ? range : "absent");
	free(want);
	free(text);
	free(heading);
}

/* Reads the table back from the verbose dump: "# help", "# default: X[; range: R]", "name =". */
static void test_docs(void **state)
{
	char *path = source_file("docs/configuration.md");
	struct config *conf = config_defaults();
	char *out = dump(conf, true);
	size_t settings = 0, sections = 0;

	if (path == NULL)
		skip();
	char *doc = read_file(path);
	for (char *help = strstr(out, "\n\n# "); help != NULL; help = strstr(help, "\n\n# ")) {
		char *def = strstr(help + 2, "\n# default: ");
		char *name = strchr(def + 1, '\n') + 1;
		*def = '\0';
		*strchr(def + 1, '\n') = '\0';
		*strchr(name, ' ') = '\0';
		char *range = strstr(def + 1, "; range: ");
		if (range != NULL)
			*range = '\0';
		check_doc_setting(doc, name, help + 4, def + 12, range ? range + 9 : NULL);
		settings++;
		help = name + strlen(name) + 1;
	}
	for (const char *p = strstr(doc, "\n### `"); p != NULL; p = strstr(p + 1, "\n### `"))
		sections++;
	assert_int_equal(settings, 51);
	assert_int_equal(sections, settings);
	free(doc);
	free(out);
	free(path);
	config_free(&conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_dump_defaults),
		cmocka_unit_test(test_dump_round_trip),
		cmocka_unit_test(test_dump_wraps_lists),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_error_limit),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_too_large),
		cmocka_unit_test(test_dump_header),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_docs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
