/* Unit tests for the routing rule files (src/route/): the rule-file reader and variables,
   address patterns, next hops, the transport policy (order, errors, speed), address and
   header rewriting, and the shipped examples. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "route/nexthop.h"
#include "route/pattern.h"
#include "route/policy.h"
#include "route/rewrite.h"
#include "route/rulefile.h"
#include "route/vars.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Failures name the table case, which a bare assert_* would not. */
static void expect_str(size_t i, const char *what, const char *got, const char *want)
{
	if (got == NULL || want == NULL ? got != want : strcmp(got, want) != 0)
		fail_msg("case %zu: %s is \"%s\", expected \"%s\"", i, what, got ? got : "(null)",
			 want ? want : "(null)");
}

static void expect_int(size_t i, const char *what, long got, long want)
{
	if (got != want)
		fail_msg("case %zu: %s is %ld, expected %ld", i, what, got, want);
}

static struct policy *policy_ok(const char *text, const struct vars *vars)
{
	struct policy *p = NULL;
	char *errors = NULL;

	if (policy_parse("t.rules", text, strlen(text), vars, NEXTHOP_ALL, &p, &errors) < 0) {
		print_error("unexpected errors for:\n%s\n---\n%s\n", text, errors);
		free(errors);
		fail();
	}
	assert_null(errors);
	return p;
}

/* Returns the errors of a policy text that must not load (caller frees). */
static char *policy_bad(const char *text, const struct vars *vars, unsigned available)
{
	struct policy *p = NULL;
	char *errors = NULL;

	assert_int_equal(policy_parse("t.rules", text, strlen(text), vars, available, &p, &errors),
			 -1);
	assert_null(p);
	assert_non_null(errors);
	return errors;
}

static void vars_ok(const char *text, struct vars **vars_r)
{
	char *errors = NULL;

	if (vars_parse("t.vars", text, strlen(text), vars_r, &errors) < 0) {
		print_error("unexpected errors:\n%s\n", errors);
		free(errors);
		fail();
	}
}

/* ---- patterns ---- */

struct pattern_case {
	const char *pattern, *address, *delimiters;
	bool match;
};

static const struct pattern_case pattern_cases[] = {
	/* exact addresses: case-insensitive, +ext stripped only with delimiters */
	{ "user@example.com", "user@example.com", "", true },
	{ "user@example.com", "USER@Example.COM", "", true },
	{ "User@Example.com", "user@example.com", "", true },
	{ "user@example.com", "user+tag@example.com", "", false },
	{ "user@example.com", "user+tag@example.com", "+", true },
	{ "user@example.com", "user-tag@example.com", "+", false },
	{ "user@example.com", "user-tag@example.com", "+-", true },
	{ "user@example.com", "user+a-b@example.com", "+-", true },
	{ "user@example.com", "user+tag@other.com", "+", false },
	{ "user@example.com", "+user@example.com", "+", false },
	{ "user+tag@example.com", "user+tag@example.com", "+", true },
	{ "user+tag@example.com", "user@example.com", "+", false },
	{ "user@example.com", "user2@example.com", "+", false },
	{ "user@example.com", "user@example.com.evil", "+", false },
	{ "user@example.com", "", "+", false },
	{ "\"john.doe\"@example.com", "john.doe@example.com", "", true },
	/* domains */
	{ "example.com", "a@example.com", "", true },
	{ "example.com", "a@EXAMPLE.com", "", true },
	{ "EXAMPLE.COM", "a@example.com", "", true },
	{ "example.com", "a@sub.example.com", "", false },
	{ "example.com", "a@xexample.com", "", false },
	{ "example.com", "example.com", "", false },
	{ "example.com", "a@b@example.com", "", true },
	/* wildcards: any depth, never the parent itself */
	{ "*.example.com", "a@sub.example.com", "", true },
	{ "*.example.com", "a@x.y.z.Example.COM", "", true },
	{ "*.example.com", "a@example.com", "", false },
	{ "*.example.com", "a@xexample.com", "", false },
	{ "*.example.com", "a@.example.com", "", false },
	{ "*.com", "a@example.com", "", true },
	/* regexes against the whole address, domain lower-cased; i for caseless */
	{ "/^user@/", "user@example.com", "", true },
	{ "/^user@/", "USER@example.com", "", false },
	{ "/^user@/i", "USER@example.com", "", true },
	{ "/@example\\.com$/", "a@EXAMPLE.COM", "", true },
	{ "/^Ab@/", "Ab@x.org", "", true },
	{ "/^ab@/", "Ab@x.org", "", false },
	{ "/bot/", "robot@x.org", "", true },
	{ "/^a/b$/", "a/b", "", true },
	{ "/^$/", "", "", true },
	{ "/(a+)+$/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab@x", "", false },
	/* anything */
	{ "*", "a@b.c", "", true },
	{ "*", "", "", true },
	{ "*", "postmaster", "+", true },
};

static void test_patterns(void **state)
{
	for (size_t i = 0; i < N_ELEMS(pattern_cases); i++) {
		const struct pattern_case *c = &pattern_cases[i];
		struct pattern *p = NULL;
		char *error = NULL;
		if (pattern_compile(c->pattern, &p, &error) < 0)
			fail_msg("case %zu: %s: %s", i, c->pattern, error);
		expect_int(i, "match", pattern_match(p, c->address, c->delimiters), c->match);
		pattern_free(&p);
		assert_null(p);
	}
}

struct pattern_error_case {
	const char *pattern, *error;
};

static const struct pattern_error_case pattern_error_cases[] = {
	{ "", "empty pattern" },
	{ "/abc", "regex '/abc' does not end with '/'" },
	{ "//", "empty regex" },
	{ "/a/x", "bad regex flags 'x' (only 'i' is known)" },
	{ "/a(/", "bad regex at offset 2: missing closing parenthesis" },
	{ "@example.com", "bad address pattern '@example.com': empty local part" },
	{ "user@", "bad address pattern 'user@': missing domain" },
	{ "exa mple.com", "bad domain pattern 'exa mple.com'" },
	{ "-example.com", "bad domain pattern '-example.com'" },
	{ "example..com", "bad domain pattern 'example..com'" },
	{ "example.com.", "bad domain pattern 'example.com.'" },
	{ "*.", "bad domain pattern '*.'" },
	{ "**.example.com", "bad domain pattern '**.example.com'" },
	{ "a*.example.com", "bad domain pattern 'a*.example.com'" },
};

static void test_pattern_errors(void **state)
{
	for (size_t i = 0; i < N_ELEMS(pattern_error_cases); i++) {
		const struct pattern_error_case *c = &pattern_error_cases[i];
		struct pattern *p = (struct pattern *)1;
		char *error = NULL;
		expect_int(i, "rc", pattern_compile(c->pattern, &p, &error), -1);
		assert_null(p);
		expect_str(i, "error", error, c->error);
		free(error);
	}
}

static void test_pattern_kinds(void **state)
{
	static const struct {
		const char *text, *key;
		enum pattern_kind kind;
	} cases[] = {
		{ "*", "", PATTERN_ANY },
		{ "User@Example.COM", "user@example.com", PATTERN_ADDRESS },
		{ "Example.COM", "example.com", PATTERN_DOMAIN },
		{ "*.Example.COM", "example.com", PATTERN_SUBDOMAINS },
		{ "/x/i", "", PATTERN_REGEX },
	};

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		struct pattern *p = NULL;
		char *error = NULL;
		assert_int_equal(pattern_compile(cases[i].text, &p, &error), 0);
		expect_int(i, "kind", pattern_kind(p), cases[i].kind);
		expect_str(i, "key", pattern_key(p), cases[i].key);
		expect_str(i, "text", pattern_text(p), cases[i].text);
		pattern_free(&p);
	}
}

/* ---- the policy: first match wins across pattern kinds ---- */

static const char order_rules[] =
	"# the order is what counts\n"
	"/^robot-[0-9]+@/          pipe:/usr/bin/robot\n"       /* line 2 */
	"robots.example.com        smtp:[robots.internal]\n"    /* line 3 */
	"robot-1@robots.example.com discard:\n"                 /* line 4: the regex wins */
	"*.lists.example.com       lmtp:inet:[10.0.0.5]:24\n"  /* line 5 */
	"owner@x.lists.example.com hold:\n"                     /* line 6: the wildcard wins */
	"vip@example.com           smtp:[vip.internal]\n"       /* line 7 */
	"example.com               lmtp:unix:/run/dovecot/lmtp\n" /* line 8 */
	"/^vip@/                   error:550 5.1.1 too late\n"  /* line 9: line 7 wins */
	"/@old\\.example\\.org$/i  error:551 5.1.6 moved\n"     /* line 10 */
	"old.example.org           discard:\n"                  /* line 11 */
	"\n"
	"*                         mx:\n"                       /* line 13 */
	"other.org                 discard:\n";                 /* line 14: never reached */

struct order_case {
	const char *address, *delimiters;
	unsigned line; /* 0: no match */
};

static const struct order_case order_cases[] = {
	{ "robot-1@robots.example.com", "", 2 },
	{ "robot-x@robots.example.com", "", 3 },
	{ "Robot-1@ROBOTS.example.com", "", 3 }, /* the regex is case-sensitive on the local part */
	{ "owner@x.lists.example.com", "", 5 },
	{ "owner@lists.example.com", "", 13 },
	{ "vip@example.com", "", 7 },
	{ "VIP+news@Example.com", "+", 7 },
	{ "vip+news@example.com", "", 8 },
	{ "someone@example.com", "", 8 },
	{ "a@old.example.org", "", 10 },
	{ "a@OLD.example.ORG", "", 10 },
	{ "a@other.org", "", 13 },
	{ "", "", 13 },
};

static void test_policy_order(void **state)
{
	struct policy *p = policy_ok(order_rules, NULL);

	assert_int_equal(policy_count(p), 12);
	for (size_t i = 0; i < N_ELEMS(order_cases); i++) {
		const struct order_case *c = &order_cases[i];
		const struct policy_rule *r = policy_match(p, c->address, c->delimiters);
		expect_int(i, "line", r != NULL ? (long)r->line : 0, c->line);
		if (r != NULL)
			expect_str(i, "file", r->file, "t.rules");
	}
	policy_free(&p);
	assert_null(p);
}

static void test_policy_no_match(void **state)
{
	struct policy *p = policy_ok("example.com discard:\n*.example.com hold:\n", NULL);

	assert_null(policy_match(p, "a@example.org", "+"));
	assert_null(policy_match(p, "example.com", "+"));
	assert_null(policy_match(p, "a@", "+"));
	assert_null(policy_match(p, "", "+"));
	assert_int_equal(policy_match(p, "a@b.example.com", NULL)->line, 2);
	policy_free(&p);
	p = policy_ok("# nothing but comments\n\n   \t\n", NULL);
	assert_int_equal(policy_count(p), 0);
	assert_null(policy_match(p, "a@b", "+"));
	policy_free(&p);
}

/* A key given twice keeps its first rule, in every index. */
static void test_policy_duplicates(void **state)
{
	struct policy *p = policy_ok("a@x.org discard:one\nA@X.ORG discard:two\n"
				     "x.org hold:\nX.org discard:\n*.x.org hold:a\n*.X.org hold:b\n"
				     "* mx:\n* discard:\n",
				     NULL);

	assert_int_equal(policy_match(p, "a@x.org", "")->line, 1);
	assert_int_equal(policy_match(p, "b@x.org", "")->line, 3);
	assert_int_equal(policy_match(p, "b@y.x.org", "")->line, 5);
	assert_int_equal(policy_match(p, "b@y.org", "")->line, 7);
	policy_free(&p);
}

/* ---- variables ---- */

static void test_vars(void **state)
{
	struct vars *vars = NULL;
	struct policy *p;
	const struct policy_rule *r;
	struct buf b = { 0 };

	vars_ok("# variables\n"
		"relay   [relay.example.com]:2525\n"
		"robot   /usr/bin/robot --flag\n"
		"dom     example.com\n"
		"sub     robots.${dom}   # values may use earlier variables\n"
		"price   $$5\n"
		"empty\n",
		&vars);
	assert_int_equal(vars_count(vars), 6);
	assert_string_equal(vars_get(vars, "sub", 3), "robots.example.com");
	assert_string_equal(vars_get(vars, "price", 5), "$5");
	assert_string_equal(vars_get(vars, "empty", 5), "");
	assert_null(vars_get(vars, "nope", 4));
	p = policy_ok("$sub            pipe:$robot ${dom}$empty '$price'\n"
		      "/^a$$/          smtp:$relay\n"
		      "/^(b)@/         discard:$1 $$ ${dom}x\n"
		      "${dom}          smtp:${relay},backup.${dom}\n",
		      vars);
	r = policy_match(p, "x@robots.example.com", "");
	nexthop_format(&r->nexthop, &b);
	assert_string_equal(buf_str(&b), "pipe:/usr/bin/robot --flag example.com $5");
	buf_reset(&b);
	nexthop_format(&policy_match(p, "a", "")->nexthop, &b);
	assert_string_equal(buf_str(&b), "smtp:[relay.example.com]:2525");
	buf_reset(&b);
	nexthop_format(&policy_match(p, "b@c", "")->nexthop, &b);
	assert_string_equal(buf_str(&b), "discard:$1 $ example.comx");
	buf_reset(&b);
	nexthop_format(&policy_match(p, "q@example.com", "")->nexthop, &b);
	assert_string_equal(buf_str(&b), "smtp:[relay.example.com]:2525,backup.example.com");
	buf_free(&b);
	policy_free(&p);
	vars_free(&vars);
	assert_null(vars);
}

struct vars_error_case {
	const char *vars, *rules, *errors;
};

static const struct vars_error_case vars_error_cases[] = {
	{ "", "$nope smtp:x\n", "t.rules:1: undefined variable 'nope'" },
	{ NULL, "\n\nexample.com smtp:${host}\n", "t.rules:3: undefined variable 'host'" },
	{ "host a.example\n", "x.org smtp:${host\n", "t.rules:1: bad variable reference '${host'" },
	{ "host a.example\n", "x.org smtp:${1x}\n", "t.rules:1: bad variable reference '${1x}'" },
	{ "host a.example\n", "x.org smtp:${}\n", "t.rules:1: bad variable reference '${}'" },
	{ "host a.example\n", "x.org smtp:$hostx\ny.org smtp:$Host\nz.org smtp:$host\n",
	  "t.rules:1: undefined variable 'hostx'\nt.rules:2: undefined variable 'Host'" },
};

static void test_vars_errors(void **state)
{
	for (size_t i = 0; i < N_ELEMS(vars_error_cases); i++) {
		const struct vars_error_case *c = &vars_error_cases[i];
		struct vars *vars = NULL;
		if (c->vars != NULL)
			vars_ok(c->vars, &vars);
		char *errors = policy_bad(c->rules, vars, NEXTHOP_ALL);
		expect_str(i, "errors", errors, c->errors);
		free(errors);
		vars_free(&vars);
	}
}

static void test_vars_file_errors(void **state)
{
	static const char text[] = "a 1\n"
				   "a 2\n"
				   "1a 3\n"
				   "b $c\n"
				   "c-d 4\n"
				   "e ${a}${a}\n";
	struct vars *vars = (struct vars *)1;
	char *errors = NULL;

	assert_int_equal(vars_parse("t.vars", text, strlen(text), &vars, &errors), -1);
	assert_null(vars);
	assert_string_equal(errors,
			    "t.vars:2: a: variable already defined\n"
			    "t.vars:3: 1a: bad variable name (use letters, digits and '_', at most 64)\n"
			    "t.vars:4: undefined variable 'c'\n"
			    "t.vars:5: c-d: bad variable name (use letters, digits and '_', at most 64)");
	free(errors);
	assert_int_equal(vars_load("/nonexistent/postern.vars", &vars, &errors), -1);
	assert_string_equal(errors, "/nonexistent/postern.vars: cannot read: No such file or directory");
	free(errors);
}

/* A value cannot make a line grow past the line limit. */
static void test_vars_expansion_limit(void **state)
{
	struct buf text = { 0 }, rules = { 0 };
	struct vars *vars = NULL;
	char *errors;

	buf_puts(&text, "big ");
	for (int i = 0; i < 1000; i++)
		buf_puts(&text, "abc");
	buf_puts(&text, "\n");
	vars_ok(buf_str(&text), &vars);
	buf_puts(&rules, "x.org discard:$big$big\n");
	errors = policy_bad(buf_str(&rules), vars, NEXTHOP_ALL);
	assert_string_equal(errors, "t.rules:1: line too long after variable substitution "
				    "(more than 4096 bytes)");
	free(errors);
	buf_free(&text);
	buf_free(&rules);
	vars_free(&vars);
}

/* ---- next hops ---- */

struct hop_case {
	const char *in;
	enum nexthop_kind kind;
	const char *out; /* formatted back; NULL: the same as in */
};

static const struct hop_case hop_cases[] = {
	{ "smtp:relay.example.com", NEXTHOP_SMTP, NULL },
	{ "smtp:[relay.example.com]:2525", NEXTHOP_SMTP, NULL },
	{ "smtp:a.example,b.example:26,[10.0.0.1]:25,[2001:db8::1]:2525", NEXTHOP_SMTP, NULL },
	{ "smtp:[IPv6:2001:db8::2]", NEXTHOP_SMTP, "smtp:[2001:db8::2]" },
	{ "SMTP:10.0.0.1:65535", NEXTHOP_SMTP, "smtp:10.0.0.1:65535" },
	{ "mx:", NEXTHOP_MX, NULL },
	{ "mx:example.net", NEXTHOP_MX, NULL },
	{ "lmtp:inet:mailstore.internal:24", NEXTHOP_LMTP_INET, NULL },
	{ "lmtp:inet:[2001:db8::5]:2424", NEXTHOP_LMTP_INET, NULL },
	{ "lmtp:[10.1.2.3]:24", NEXTHOP_LMTP_INET, "lmtp:inet:[10.1.2.3]:24" },
	{ "lmtp:unix:/run/dovecot/lmtp", NEXTHOP_LMTP_UNIX, NULL },
	{ "pipe:/usr/bin/robot --flag arg", NEXTHOP_PIPE, NULL },
	{ "pipe:/bin/sh -c 'exec robot \"$1\" >>/tmp/log'", NEXTHOP_PIPE, NULL },
	{ "pipe:  /usr/bin/x  a\"b c\"d 'it'\"'\"'s' ''", NEXTHOP_PIPE,
	  "pipe:/usr/bin/x 'ab cd' \"it's\" ''" },
	{ "pipe:/x \"a\\\"b\\\\c\\d\"", NEXTHOP_PIPE, "pipe:/x 'a\"b\\c\\d'" },
	{ "mda:/usr/lib/dovecot/deliver -d $user", NEXTHOP_MDA, NULL },
	{ "maildir:/var/mail/robots/", NEXTHOP_MAILDIR, NULL },
	{ "webhook:https://hooks.example.com/mail?token=a%2Fb&x=1", NEXTHOP_WEBHOOK, NULL },
	{ "webhook:http://user:pw@[::1]:8080/in", NEXTHOP_WEBHOOK, NULL },
	{ "webhook:HTTPS://h", NEXTHOP_WEBHOOK, NULL },
	{ "discard:", NEXTHOP_DISCARD, NULL },
	{ "discard:spam trap", NEXTHOP_DISCARD, NULL },
	{ "error:550 5.1.1 no such user here", NEXTHOP_ERROR, NULL },
	{ "error:450 4.2.1 try later", NEXTHOP_ERROR, NULL },
	{ "error:554", NEXTHOP_ERROR, "error:554 delivery refused by the transport policy" },
	{ "error:421 4.3.2", NEXTHOP_ERROR, "error:421 4.3.2 delivery deferred by the transport policy" },
	{ "error:550    sorry, no", NEXTHOP_ERROR, "error:550 sorry, no" },
	{ "hold:", NEXTHOP_HOLD, NULL },
	{ "hold:needs review", NEXTHOP_HOLD, NULL },
	{ "vacation:", NEXTHOP_VACATION, NULL },
	{ "mask:relay", NEXTHOP_MASK, NULL },
	{ "bounce:", NEXTHOP_BOUNCE, NULL },
	{ "Bounce:count", NEXTHOP_BOUNCE, "bounce:count" },
};

static void test_nexthop_kinds(void **state)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < N_ELEMS(hop_cases); i++) {
		const struct hop_case *c = &hop_cases[i];
		struct nexthop hop, again;
		const char *error = NULL;
		if (nexthop_parse(c->in, &hop, &error) < 0)
			fail_msg("case %zu: %s: %s", i, c->in, error);
		expect_int(i, "kind", hop.kind, c->kind);
		buf_reset(&b);
		nexthop_format(&hop, &b);
		expect_str(i, "formatted", buf_str(&b), c->out ? c->out : c->in);
		/* What is formatted parses back to itself. */
		if (nexthop_parse(buf_str(&b), &again, &error) < 0)
			fail_msg("case %zu: %s does not parse back: %s", i, buf_str(&b), error);
		size_t len = b.len;
		nexthop_format(&again, &b);
		expect_str(i, "formatted twice", b.data + len, b.data[len] ? b.data + len : "");
		expect_int(i, "reformatted length", (long)(b.len - len), (long)len);
		nexthop_clear(&hop);
		nexthop_clear(&again);
	}
	buf_free(&b);
}

static void test_nexthop_fields(void **state)
{
	struct nexthop hop;
	const char *error;

	assert_int_equal(nexthop_parse("smtp:a.example,[b.example]:26,[2001:db8::1]", &hop, &error), 0);
	assert_int_equal(hop.nhosts, 3);
	assert_string_equal(hop.hosts[0].host, "a.example");
	assert_false(hop.hosts[0].bracketed);
	assert_int_equal(hop.hosts[0].port, 0);
	assert_true(hop.hosts[1].bracketed);
	assert_int_equal(hop.hosts[1].port, 26);
	assert_string_equal(hop.hosts[2].host, "2001:db8::1");
	assert_true(hop.hosts[2].ipv6);
	nexthop_clear(&hop);
	assert_int_equal(nexthop_parse("pipe:/bin/sh -c 'a b'", &hop, &error), 0);
	assert_int_equal(hop.argc, 3);
	assert_string_equal(hop.argv[0], "/bin/sh");
	assert_string_equal(hop.argv[2], "a b");
	assert_null(hop.argv[3]);
	nexthop_clear(&hop);
	assert_int_equal(nexthop_parse("error:451 4.7.1 greylisted", &hop, &error), 0);
	assert_int_equal(hop.code, 451);
	assert_string_equal(hop.status, "4.7.1");
	assert_string_equal(hop.text, "greylisted");
	nexthop_clear(&hop);
	assert_int_equal(nexthop_parse("lmtp:unix:/run/lmtp", &hop, &error), 0);
	assert_string_equal(hop.path, "/run/lmtp");
	nexthop_clear(&hop);
	assert_int_equal(nexthop_parse("hold:", &hop, &error), 0);
	assert_null(hop.text);
	nexthop_clear(&hop);
}

/* The limits on hosts and argv words hold exactly. */
static void test_nexthop_limits(void **state)
{
	struct buf b = { 0 };
	struct nexthop hop;
	const char *error;

	buf_puts(&b, "smtp:h0");
	for (int i = 1; i < NEXTHOP_HOSTS_MAX; i++)
		buf_printf(&b, ",h%d", i);
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), 0);
	assert_int_equal(hop.nhosts, NEXTHOP_HOSTS_MAX);
	nexthop_clear(&hop);
	buf_puts(&b, ",one.more");
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), -1);
	assert_string_equal(error, "too many hosts (the limit is 32)");
	buf_reset(&b);
	buf_puts(&b, "pipe:/bin/echo");
	for (int i = 1; i < NEXTHOP_ARGV_MAX; i++)
		buf_printf(&b, " '%d'", i);
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), 0);
	assert_int_equal(hop.argc, NEXTHOP_ARGV_MAX);
	assert_null(hop.argv[NEXTHOP_ARGV_MAX]);
	nexthop_clear(&hop);
	buf_puts(&b, " x");
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), -1);
	assert_string_equal(error, "too many arguments (the limit is 64)");
	buf_reset(&b);
	buf_puts(&b, "error:550 5.0.0 ");
	for (int i = 0; i < NEXTHOP_TEXT_MAX; i++)
		buf_putc(&b, 't');
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), 0);
	nexthop_clear(&hop);
	buf_putc(&b, 't');
	assert_int_equal(nexthop_parse(buf_str(&b), &hop, &error), -1);
	assert_string_equal(error, "text too long (the limit is 400 bytes)");
	buf_free(&b);
}

struct hop_error_case {
	const char *in, *error;
};

static const struct hop_error_case hop_error_cases[] = {
	{ "smtp:", "smtp: needs a host" },
	{ "smtp:host:0", "port out of range (1-65535)" },
	{ "smtp:host:65536", "port out of range (1-65535)" },
	{ "smtp:host:123456", "bad port" },
	{ "smtp:host:", "bad port" },
	{ "smtp:host:2x", "bad port" },
	{ "smtp:a,,b", "empty host" },
	{ "smtp:a,", "empty host" },
	{ "smtp:2001:db8::1", "an IPv6 address must be in brackets" },
	{ "smtp:[2001:db8::zz]", "bad IPv6 address" },
	{ "smtp:[host", "missing ']'" },
	{ "smtp:[host]x", "junk after ']'" },
	{ "smtp:bad_host!", "bad host name" },
	{ "smtp:a b", "unexpected text after the next hop" },
	{ "mx:[10.0.0.1]", "mx: takes a domain, not an address or [host]" },
	{ "lmtp:inet:host:99999", "port out of range (1-65535)" },
	{ "lmtp:unix:run/lmtp", "path must be absolute" },
	{ "pipe:", "needs a program" },
	{ "pipe:robot --flag", "the program must be an absolute path" },
	{ "pipe:sh -c 'echo'", "the program must be an absolute path" },
	{ "pipe:/bin/sh -c 'echo", "unterminated ' quote" },
	{ "mda:/x \"a", "unterminated \" quote" },
	{ "maildir:Maildir/", "path must be absolute" },
	{ "webhook:ftp://x/", "webhook: needs an http:// or https:// URL" },
	{ "webhook:https://", "empty host" },
	{ "webhook:https://h/a b", "unexpected text after the next hop" },
	{ "webhook:https://h/a%zz", "bad character in URL path or query" },
	{ "webhook:https://h/a#frag", "bad character in URL path or query" },
	{ "webhook:https://h:0/", "port out of range (1-65535)" },
	{ "webhook:https://u\"@h/", "bad user information in URL" },
	{ "error:250 ok", "the reply code must be 4xx or 5xx" },
	{ "error:350", "the reply code must be 4xx or 5xx" },
	{ "error:", "error: needs a 3-digit reply code" },
	{ "error:55 x", "error: needs a 3-digit reply code" },
	{ "error:5500 x", "error: needs a 3-digit reply code" },
	{ "error:450 5.1.1 x", "enhanced status class does not match the reply code" },
	{ "error:550 2.0.0 x", "enhanced status class does not match the reply code" },
	{ "error:550 5.1 x", "bad enhanced status code" },
	{ "error:550 5.1.1234 x", "bad enhanced status code" },
	{ "frobnicate:x", "unknown next hop kind" },
	{ "smtp", "unknown next hop kind" },
	{ "discard:a\rb", "control character in next hop" },
};

static void test_nexthop_errors(void **state)
{
	for (size_t i = 0; i < N_ELEMS(hop_error_cases); i++) {
		const struct hop_error_case *c = &hop_error_cases[i];
		struct nexthop hop;
		const char *error = NULL;
		expect_int(i, "rc", nexthop_parse(c->in, &hop, &error), -1);
		expect_str(i, "error", error, c->error);
		expect_int(i, "argv empty", hop.argv == NULL && hop.hosts == NULL, 1);
	}
}

/* Every bad line of a policy is reported with its file:line, in line order. */
static void test_policy_errors(void **state)
{
	static const char text[] =
		"good.example      smtp:[relay]:25\n"
		"a.example         smtp:relay:99999\n"
		"b.example         pipe:robot --flag\n"
		"c.example         error:250 2.0.0 fine\n"
		"d.example         error:450 5.1.1 mismatch\n"
		"e.example         webhook:https://hooks.example/x\n"
		"f.example         frobnicate:x\n"
		"lonely.example\n"
		"/bad(/            bad:x\n"
		"g.example         lmtp:unix:relative/path   # comment\n"
		"h.example         maildir:/ok/\n";
	unsigned available = NEXTHOP_ALL & ~NEXTHOP_BIT(NEXTHOP_WEBHOOK);
	char *errors = policy_bad(text, NULL, available);

	assert_string_equal(errors,
		"t.rules:2: bad next hop 'smtp:relay:99999': port out of range (1-65535)\n"
		"t.rules:3: bad next hop 'pipe:robot': the program must be an absolute path\n"
		"t.rules:4: bad next hop 'error:250': the reply code must be 4xx or 5xx\n"
		"t.rules:5: bad next hop 'error:450': enhanced status class does not match the "
		"reply code\n"
		"t.rules:6: agent 'webhook' is not available yet\n"
		"t.rules:7: unknown next hop kind 'frobnicate'\n"
		"t.rules:8: expected 'pattern next-hop'\n"
		"t.rules:9: bad regex at offset 4: missing closing parenthesis\n"
		"t.rules:9: unknown next hop kind 'bad'\n"
		"t.rules:10: bad next hop 'lmtp:unix:relative/path': path must be absolute");
	free(errors);
	/* The same file with every kind available fails only on the other lines. */
	errors = policy_bad("x.org lmtp:inet:[::1]:24\ny.org webhook:https://h/\n", NULL,
			    NEXTHOP_BIT(NEXTHOP_SMTP));
	assert_string_equal(errors, "t.rules:1: agent 'lmtp' is not available yet\n"
				    "t.rules:2: agent 'webhook' is not available yet");
	free(errors);
}

/* ---- rewriting addresses ---- */

static const char rewrite_rules[] =
	"from   old.example          new.example\n"
	"to     old.example          inbound.example\n"
	"both   *.corp.example       corp.example\n"
	"both   /^(.+)\\.legacy\\.org$/  $1.modern.org\n"
	"from   /^([a-z]+)-([a-z]+)\\.swap$/  $2-$1.swapped\n"
	"to     /^opt(x)?\\.test$/    opt$1.done\n"
	"both   CASE.example         Lower.Example\n"
	"both   same.example         same.example\n"
	"both   /^long\\.example$/   "
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbb\n"
	"both   /^(.*)\\.grow$/      $1$1$1$1.grown\n";

static struct rewrite *rewrite_ok(const char *text)
{
	struct rewrite *rw = NULL;
	char *errors = NULL;

	if (rewrite_parse("t.rewrite", text, strlen(text), NULL, &rw, &errors) < 0) {
		print_error("unexpected errors:\n%s\n", errors);
		free(errors);
		fail();
	}
	return rw;
}

struct rw_case {
	enum rewrite_dir dir;
	const char *in;
	int rc;
	const char *out;
};

#define LOCAL64 "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll"

static const struct rw_case rw_cases[] = {
	{ REWRITE_FROM, "a@old.example", 1, "a@new.example" },
	{ REWRITE_TO, "a@old.example", 1, "a@inbound.example" },
	{ REWRITE_BOTH, "a@old.example", 1, "a@new.example" },
	{ REWRITE_FROM, "A.B@OLD.Example", 1, "A.B@new.example" },
	{ REWRITE_FROM, "a@x.old.example", 0, "a@x.old.example" },
	{ REWRITE_TO, "a@host.corp.example", 1, "a@corp.example" },
	{ REWRITE_FROM, "a@a.b.c.corp.example", 1, "a@corp.example" },
	{ REWRITE_FROM, "a@corp.example", 0, "a@corp.example" },
	{ REWRITE_TO, "x@www.legacy.org", 1, "x@www.modern.org" },
	{ REWRITE_TO, "x@A.B.LEGACY.org", 1, "x@a.b.modern.org" },
	{ REWRITE_FROM, "x@ab-cd.swap", 1, "x@cd-ab.swapped" },
	{ REWRITE_TO, "x@ab-cd.swap", 0, "x@ab-cd.swap" },
	{ REWRITE_TO, "x@opt.test", 1, "x@opt.done" },   /* an unset group is empty */
	{ REWRITE_TO, "x@optx.test", 1, "x@optx.done" },
	{ REWRITE_TO, "x@case.example", 1, "x@lower.example" },
	{ REWRITE_TO, "x@same.example", 0, "x@same.example" },
	{ REWRITE_TO, "x@SAME.example", 1, "x@same.example" },
	{ REWRITE_TO, "\"a@b\"@old.example", 1, "\"a@b\"@inbound.example" },
	/* never rewritten */
	{ REWRITE_FROM, "", 0, "" },
	{ REWRITE_BOTH, "", 0, "" },
	{ REWRITE_FROM, "postmaster", 0, "postmaster" },
	{ REWRITE_FROM, "a@", 0, "a@" },
	{ REWRITE_FROM, "a@other.example", 0, "a@other.example" },
	/* results that would be invalid or too long */
	{ REWRITE_TO, LOCAL64 "@long.example", -1, LOCAL64 "@long.example" },
	{ REWRITE_TO, "a@long.example", 1,
	  "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbb" },
	{ REWRITE_TO, "a@abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz.grow", -1,
	  "a@abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz.grow" },
	{ REWRITE_TO, "a@x.grow", 1, "a@xxxx.grown" },
	{ REWRITE_TO, "a@.grow", -1, "a@.grow" },
};

static void test_rewrite_address(void **state)
{
	struct rewrite *rw = rewrite_ok(rewrite_rules);
	char out[REWRITE_ADDRESS_MAX + 1];

	assert_int_equal(rewrite_count(rw), 10);
	for (size_t i = 0; i < N_ELEMS(rw_cases); i++) {
		const struct rw_case *c = &rw_cases[i];
		memset(out, 'Z', sizeof(out));
		expect_int(i, "rc", rewrite_address(rw, c->dir, c->in, out, sizeof(out)), c->rc);
		expect_str(i, "out", out, c->out);
	}
	/* A small output buffer: the result does not fit, the input does. */
	assert_int_equal(rewrite_address(rw, REWRITE_TO, "a@x.grow", out, 10), -1);
	assert_string_equal(out, "a@x.grow");
	assert_int_equal(rewrite_address(rw, REWRITE_TO, "abcdefghij@x.grow", out, 10), -1);
	assert_string_equal(out, "");
	rewrite_free(&rw);
	assert_null(rw);
}

static void test_rewrite_errors(void **state)
{
	static const char text[] =
		"from old.example new.example\n"
		"sideways old.example new.example\n"
		"from old.example\n"
		"to * new.example\n"
		"to a@old.example new.example\n"
		"to old.example -new.example\n"
		"to /^(a)$/ $2.example\n"
		"to /^(a)$/ $$x.example\n"
		"to /^(a$/ x.example\n"
		"both old.example new.example extra\n"
		"to old.example $$1.example\n";
	struct rewrite *rw = NULL;
	char *errors = NULL;

	assert_int_equal(rewrite_parse("t.rewrite", text, strlen(text), NULL, &rw, &errors), -1);
	assert_null(rw);
	assert_string_equal(errors,
		"t.rewrite:2: bad direction 'sideways' (from, to or both)\n"
		"t.rewrite:3: expected 'from|to|both  old  new'\n"
		"t.rewrite:4: old must be a domain, *.domain or /regex/\n"
		"t.rewrite:5: old must be a domain, *.domain or /regex/\n"
		"t.rewrite:6: new is not a domain\n"
		"t.rewrite:7: new refers to a group the regex does not have\n"
		"t.rewrite:8: '$' in new must be followed by a group number 1-9\n"
		"t.rewrite:9: bad regex at offset 4: missing closing parenthesis\n"
		"t.rewrite:10: expected 'from|to|both  old  new'\n"
		"t.rewrite:11: new is not a domain");
	free(errors);
	assert_int_equal(rewrite_load("/nonexistent/rewrite", NULL, &rw, &errors), -1);
	assert_string_equal(errors, "/nonexistent/rewrite: cannot read: No such file or directory");
	free(errors);
}

/* ---- rewriting header values ---- */

static const char header_rules[] = "from  old.example      new.example\n"
				   "to    old.example      in.example\n"
				   "both  *.sub.example    sub.example\n"
				   "both  /^(.+)\\.re$/    $1.rx\n";

struct hdr_case {
	const char *name, *value;
	int rc;
	const char *out; /* NULL: the value unchanged */
};

static const struct hdr_case hdr_cases[] = {
	{ "From", "a@old.example", 1, "a@new.example" },
	{ "from", "a@OLD.example", 1, "a@new.example" },
	{ "To", "a@old.example", 1, "a@in.example" },
	{ "Cc", "a@x.sub.example, b@old.example", 1, "a@sub.example, b@in.example" },
	{ "Subject", "a@old.example", 0, NULL },
	{ "Reply-To", "a@unrelated.example", 0, NULL },
	/* display names, quoted strings and comments are kept byte for byte */
	{ "From", "Alice Example <alice@old.example>", 1, "Alice Example <alice@new.example>" },
	{ "From", "\"Doe, John (old.example)\" <j@old.example>", 1,
	  "\"Doe, John (old.example)\" <j@new.example>" },
	{ "From", "j@old.example (John at old.example, a@old.example)", 1,
	  "j@new.example (John at old.example, a@old.example)" },
	{ "From", "(nested (a@old.example) comment) <j@old.example>", 1,
	  "(nested (a@old.example) comment) <j@new.example>" },
	{ "Sender", "\"a@old.example\"@old.example", 1, "\"a@old.example\"@new.example" },
	{ "Resent-From", "\"quoted \\\" local\"@old.example", 1,
	  "\"quoted \\\" local\"@new.example" },
	{ "From", "=?UTF-8?Q?J=C3=B6rg?= <j@old.example>", 1, "=?UTF-8?Q?J=C3=B6rg?= <j@new.example>" },
	{ "From", "J\xc3\xb6rg <j@old.example>", 1, "J\xc3\xb6rg <j@new.example>" },
	{ "From", "John Q. Public <jqp@old.example>", 1, "John Q. Public <jqp@new.example>" },
	/* groups */
	{ "To", "team: a@old.example, b@x.sub.example;", 1, "team: a@in.example, b@sub.example;" },
	{ "To", "undisclosed-recipients:;", 0, NULL },
	{ "To", "a@old.example, empty:;, \"The Team\": b@old.example ;, c@old.example", 1,
	  "a@in.example, empty:;, \"The Team\": b@in.example ;, c@in.example" },
	/* folding, several addresses, obsolete forms */
	{ "To", "a@old.example,\r\n\tB <b@OLD.EXAMPLE>,\r\n c@keep.example", 1,
	  "a@in.example,\r\n\tB <b@in.example>,\r\n c@keep.example" },
	{ "To", " , a@old.example, , ", 1, " , a@in.example, , " },
	{ "To", "<@route.example,@x:a@old.example>", 1, "<@route.example,@x:a@in.example>" },
	{ "To", "a @ old.example", 1, "a @ in.example" },
	{ "To", "a@old . example", 0, NULL },                /* folded inside: left alone */
	{ "To", "a@old.(c)example", 0, NULL },
	{ "To", "a@[192.0.2.1], b@old.example", 1, "a@[192.0.2.1], b@in.example" },
	{ "From", "<>", 0, NULL },
	{ "To", "x@www.re", 1, "x@www.rx" },
	{ "To", "x@Www.RE", 1, "x@www.rx" },
	{ "To", "x@old.example.", 0, NULL },
	/* unparsable: left unchanged as a whole */
	{ "To", "John Smith", 0, NULL },
	{ "To", "a@old.example, John Smith", 0, NULL },
	{ "To", "\"unbalanced <a@old.example>", 0, NULL },
	{ "To", "(unbalanced <a@old.example>", 0, NULL },
	{ "To", "unbalanced) <a@old.example>", 0, NULL },
	{ "To", "<a@old.example", 0, NULL },
	{ "To", "a@old.example>", 0, NULL },
	{ "To", "<<a@old.example>>", 0, NULL },
	{ "To", "<a@old.example> trailing", 0, NULL },
	{ "To", "team: a@old.example", 0, NULL },
	{ "To", "a: b: c@old.example;;", 0, NULL },
	{ "To", "a@old.example;", 0, NULL },
	{ "To", "a@[unclosed, b@old.example", 0, NULL },
	{ "To", "a@b]@old.example", 0, NULL },
	{ "To", "a\\@old.example", 0, NULL },
	{ "To", "\"a\\", 0, NULL },
	{ "To", "(a\\", 0, NULL },
	{ "To", "@old.example", 0, NULL },
	{ "To", "a@", 0, NULL },
	{ "To", "a@@old.example", 0, NULL },
	{ "To", "", 0, NULL },
	{ "To", "\xff\xfe@old.example", 1, "\xff\xfe@in.example" },
};

static void test_rewrite_header(void **state)
{
	struct rewrite *rw = rewrite_ok(header_rules);
	struct buf out = { 0 };

	for (size_t i = 0; i < N_ELEMS(hdr_cases); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		buf_reset(&out);
		expect_int(i, "rc", rewrite_header(rw, c->name, c->value, &out), c->rc);
		expect_str(i, "value", buf_str(&out), c->out ? c->out : c->value);
	}
	buf_free(&out);
	rewrite_free(&rw);
}

/* Long and hostile values: no crash, no overrun, and unchanged unless they parse. */
static void test_rewrite_header_hostile(void **state)
{
	static const char *const units[] = { "a@old.example, ", "\"", "(", "<", "((((", "\\",
					     "<a@old.example>", "x", "\x80\xff", "@", ":", ";" };
	struct rewrite *rw = rewrite_ok(header_rules);
	struct buf value = { 0 }, out = { 0 }, want = { 0 };

	for (size_t u = 0; u < N_ELEMS(units); u++) {
		buf_reset(&value);
		while (value.len < 100 * 1024)
			buf_puts(&value, units[u]);
		buf_reset(&out);
		int rc = rewrite_header(rw, "To", buf_str(&value), &out);
		if (u == 0) {
			/* "a@old.example, " repeated ends in an empty element: it parses. */
			assert_int_equal(rc, 1);
			assert_int_equal(out.len, value.len / 15 * 14);
			continue;
		}
		if (rc == 0)
			assert_string_equal(buf_str(&out), buf_str(&value));
	}
	/* 100 KB of one address list with all its parts. */
	buf_reset(&value);
	buf_reset(&want);
	for (int i = 0; value.len < 100 * 1024; i++) {
		buf_printf(&value, "\"N%d, (x)\" <u%d@old.example> (c@old.example),\r\n ", i, i);
		buf_printf(&want, "\"N%d, (x)\" <u%d@in.example> (c@old.example),\r\n ", i, i);
	}
	buf_puts(&value, "g: last@old.example;");
	buf_puts(&want, "g: last@in.example;");
	buf_reset(&out);
	assert_int_equal(rewrite_header(rw, "To", buf_str(&value), &out), 1);
	assert_string_equal(buf_str(&out), buf_str(&want));
	buf_free(&value);
	buf_free(&out);
	buf_free(&want);
	rewrite_free(&rw);
}

/* ---- the rule-file reader ---- */

struct collected {
	struct buf text; /* "line|field|field...\n" per rule, and rest[1] */
};

static void collect_rule(void *arg, const struct rulefile_rule *r, struct rulefile_errors *errors)
{
	struct collected *c = arg;

	buf_printf(&c->text, "%u", r->line);
	for (size_t i = 0; i < r->nfields; i++)
		buf_printf(&c->text, "|%s", r->fields[i]);
	if (r->nfields > 1)
		buf_printf(&c->text, "|rest=%s", r->rest[1]);
	buf_putc(&c->text, '\n');
	if (strcmp(r->fields[0], "bad") == 0)
		rulefile_error(errors, r, "the callback refused '%s'", r->fields[0]);
}

static void test_rulefile(void **state)
{
	static const char text[] = "\xef\xbb\xbf# comment\n"
				   "\n"
				   "  a   b\tc   # trailing comment\r\n"
				   "a#b c#d  #e\n"
				   "   # indented comment\n"
				   "\t\t\n"
				   "one\n"
				   "x $$y ${v}z $v\n"
				   "last line without newline";
	struct collected c = { { 0 } };
	struct vars *vars = NULL;
	char *errors = NULL;

	vars_ok("v  two words\n", &vars);
	assert_int_equal(rulefile_parse("t", text, sizeof(text) - 1, vars, collect_rule, &c, &errors),
			 0);
	assert_null(errors);
	assert_string_equal(buf_str(&c.text),
			    "3|a|b|c|rest=b\tc\n"
			    "4|a#b|c#d|rest=c#d\n"
			    "7|one\n"
			    "8|x|$y|two|wordsz|two|words|rest=$y two wordsz two words\n"
			    "9|last|line|without|newline|rest=line without newline\n");
	buf_free(&c.text);
	vars_free(&vars);
}

static void test_rulefile_errors(void **state)
{
	struct collected c = { { 0 } };
	struct buf text = { 0 };
	char *errors = NULL;

	buf_puts(&text, "ok 1\n");
	buf_append(&text, "nul\0byte\n", 9);
	buf_puts(&text, "bad 1\n");
	buf_puts(&text, "ctl \x01 char\n");
	for (int i = 0; i < RULEFILE_LINE_MAX + 1; i++)
		buf_putc(&text, 'x');
	buf_puts(&text, "\nok 2\nbad 2\n");
	assert_int_equal(rulefile_parse("f.rules", text.data, text.len, NULL, collect_rule, &c,
					&errors), -1);
	assert_string_equal(errors, "f.rules:2: NUL byte in line\n"
				    "f.rules:3: the callback refused 'bad'\n"
				    "f.rules:4: control character in line\n"
				    "f.rules:5: line too long (more than 4096 bytes)\n"
				    "f.rules:7: the callback refused 'bad'");
	assert_string_equal(buf_str(&c.text), "1|ok|1|rest=1\n3|bad|1|rest=1\n6|ok|2|rest=2\n"
					      "7|bad|2|rest=2\n");
	free(errors);
	buf_free(&c.text);
	buf_free(&text);
}

/* A binary file must not produce megabytes of errors. */
static void test_rulefile_error_limit(void **state)
{
	struct buf text = { 0 };
	char *errors = NULL, *last;
	struct policy *p = NULL;
	size_t lines = 1;

	for (int i = 0; i < RULEFILE_ERRORS_MAX + 50; i++)
		buf_puts(&text, "lonely\n");
	assert_int_equal(policy_parse("t", text.data, text.len, NULL, NEXTHOP_ALL, &p, &errors), -1);
	for (const char *s = errors; (s = strchr(s, '\n')) != NULL; s++)
		lines++;
	assert_int_equal(lines, RULEFILE_ERRORS_MAX + 1);
	last = strrchr(errors, '\n') + 1;
	assert_string_equal(last, "t: 50 more errors not shown");
	free(errors);
	buf_free(&text);
}

static void test_rulefile_load(void **state)
{
	char path[] = "/tmp/test_route.XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "example.com smtp:[relay]:2525\n*.example.com error:550 5.1.2 bad\n";
	struct policy *p = NULL;
	char *errors = NULL;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (long)sizeof(text) - 1);
	close(fd);
	assert_int_equal(policy_load(path, NULL, NEXTHOP_ALL, &p, &errors), 0);
	assert_int_equal(policy_count(p), 2);
	assert_string_equal(policy_match(p, "a@b.example.com", "")->file, path);
	assert_int_equal(policy_match(p, "a@b.example.com", "")->nexthop.code, 550);
	policy_free(&p);
	unlink(path);
	assert_int_equal(policy_load(path, NULL, NEXTHOP_ALL, &p, &errors), -1);
	assert_null(p);
	assert_non_null(strstr(errors, ": cannot read: No such file or directory"));
	free(errors);
}

static void test_free_null(void **state)
{
	struct policy *p = NULL;
	struct rewrite *rw = NULL;
	struct vars *v = NULL;
	struct pattern *pat = NULL;

	policy_free(&p);
	rewrite_free(&rw);
	vars_free(&v);
	pattern_free(&pat);
	assert_null(p);
	assert_null(rw);
	assert_null(v);
	assert_null(pat);
}

/* ---- speed ---- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 10 000 rules of every kind, the regexes among the first ones so that each lookup tries
   them, then 100 000 lookups that hit every index and miss. */
static void test_performance(void **state)
{
	struct buf text = { 0 }, addr = { 0 };
	struct policy *p = NULL;
	char *errors = NULL;
	size_t hits = 0;
	double t0 = now(), t1, t2;

	for (int i = 0; i < 20; i++)
		buf_printf(&text, "/^robot%d-[0-9]+@bots\\.example$/ pipe:/usr/bin/robot %d\n", i, i);
	for (int i = 0; i < 10000 - 20; i++) {
		switch (i % 4) {
		case 0: buf_printf(&text, "user%d@d%d.example smtp:[h%d.example]:25\n", i, i % 500, i); break;
		case 1: buf_printf(&text, "d%d.example lmtp:inet:store%d:24\n", i, i); break;
		case 2: buf_printf(&text, "*.w%d.example mx:\n", i); break;
		default: buf_printf(&text, "x%d@w%d.example error:550 5.1.1 gone\n", i, i); break;
		}
	}
	assert_int_equal(policy_parse("perf", text.data, text.len, NULL, NEXTHOP_ALL, &p, &errors), 0);
	t1 = now();
	for (int i = 0; i < 100000; i++) {
		buf_reset(&addr);
		switch (i % 5) {
		case 0: buf_printf(&addr, "User%d+ext@D%d.example", i % 9980 / 4 * 4, i % 9980 / 4 * 4 % 500); break;
		case 1: buf_printf(&addr, "a@d%d.example", i % 9980 / 4 * 4 + 1); break;
		case 2: buf_printf(&addr, "a@x.y.w%d.example", i % 9980 / 4 * 4 + 2); break;
		case 3: buf_printf(&addr, "robot%d-%d@bots.example", i % 20, i); break;
		default: buf_printf(&addr, "nobody%d@nowhere.example", i); break;
		}
		hits += policy_match(p, buf_str(&addr), "+") != NULL;
	}
	t2 = now();
	print_message("10000 rules loaded in %.3f s, 100000 lookups in %.3f s (%.2f us each)\n",
		      t1 - t0, t2 - t1, (t2 - t1) * 10.0);
	assert_int_equal(hits, 80000);
	assert_true(t1 - t0 < 5.0);
	assert_true(t2 - t1 < 5.0);
	policy_free(&p);
	buf_free(&text);
	buf_free(&addr);
}

/* ---- the shipped examples ---- */

/* The source tree: $POSTERN_SOURCE, else found from this file's name, else from the test
   binary (build/<dir>/tests/test_route). NULL when none holds the examples. */
static char *source_dir(void)
{
	const char *env = getenv("POSTERN_SOURCE"), *self = __FILE__;
	const char *tail = strstr(self, "tests/unit/test_route.c");
	char exe[4096];
	ssize_t n;
	char *dirs[3] = { env != NULL ? xstrdup(env) : NULL,
			  tail != NULL ? xasprintf("%.*s.", (int)(tail - self), self) : NULL, NULL };

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		dirs[2] = xasprintf("%s/../../..", exe);
	}
	char *found = NULL;
	for (size_t i = 0; i < N_ELEMS(dirs); i++) {
		char *probe = dirs[i] ? xasprintf("%s/examples/transport.rules", dirs[i]) : NULL;
		if (found == NULL && probe != NULL && access(probe, R_OK) == 0)
			found = xstrdup(dirs[i]);
		free(probe);
		free(dirs[i]);
	}
	return found;
}

static void test_examples(void **state)
{
	char *src = source_dir(), *path, *errors = NULL;
	struct vars *vars = NULL;
	struct policy *p = NULL;
	struct rewrite *rw = NULL;

	if (src == NULL)
		fail_msg("examples/ not found: set POSTERN_SOURCE to the source tree");
	path = xasprintf("%s/examples/variables", src);
	if (vars_load(path, &vars, &errors) < 0)
		fail_msg("%s", errors);
	free(path);
	path = xasprintf("%s/examples/transport.rules", src);
	if (policy_load(path, vars, NEXTHOP_ALL, &p, &errors) < 0)
		fail_msg("%s", errors);
	free(path);
	path = xasprintf("%s/examples/rewrite.rules", src);
	if (rewrite_load(path, vars, &rw, &errors) < 0)
		fail_msg("%s", errors);
	assert_true(policy_count(p) > 10);
	assert_true(rewrite_count(rw) > 2);
	assert_non_null(policy_match(p, "anyone@example.org", "+"));
	free(path);
	free(src);
	policy_free(&p);
	rewrite_free(&rw);
	vars_free(&vars);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_pattern_errors),
		cmocka_unit_test(test_pattern_kinds),
		cmocka_unit_test(test_policy_order),
		cmocka_unit_test(test_policy_no_match),
		cmocka_unit_test(test_policy_duplicates),
		cmocka_unit_test(test_vars),
		cmocka_unit_test(test_vars_errors),
		cmocka_unit_test(test_vars_file_errors),
		cmocka_unit_test(test_vars_expansion_limit),
		cmocka_unit_test(test_nexthop_kinds),
		cmocka_unit_test(test_nexthop_fields),
		cmocka_unit_test(test_nexthop_limits),
		cmocka_unit_test(test_nexthop_errors),
		cmocka_unit_test(test_policy_errors),
		cmocka_unit_test(test_rewrite_address),
		cmocka_unit_test(test_rewrite_errors),
		cmocka_unit_test(test_rewrite_header),
		cmocka_unit_test(test_rewrite_header_hostile),
		cmocka_unit_test(test_rulefile),
		cmocka_unit_test(test_rulefile_errors),
		cmocka_unit_test(test_rulefile_error_limit),
		cmocka_unit_test(test_rulefile_load),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_performance),
		cmocka_unit_test(test_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
