#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route/alias.h"
#include "route/aliasfile.h"
#include "util/buf.h"
#include "util/xalloc.h"

/* Failures name the table case, which a bare assert_* would not. */
static void expect_str(const char *name, const char *what, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("case %s: %s is \"%s\", expected \"%s\"", name, what, got ? got : "(null)",
			 want);
}

static void expect_int(const char *name, const char *what, long got, long want)
{
	if (got != want)
		fail_msg("case %s: %s is %ld, expected %ld", name, what, got, want);
}

/* ---- an in-memory alias table ---- */

/* rows: "key: target, target; key: target" (targets split at ", "). A row "key: !text"
   makes the lookup of key fail with text; "key:" is an alias without targets. Every key
   looked up is logged, separated by spaces. */
struct table {
	const char *rows;
	struct buf log;
};

static void table_targets(const char *list, struct alias_targets *targets_r)
{
	char *copy = xstrdup(list), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (*t != '\0')
			alias_targets_add(targets_r, t);
	}
	free(copy);
}

static int table_lookup(void *ctx, const char *key, struct alias_targets *targets_r,
			const char **error_r)
{
	struct table *tb = ctx;
	char *rows = xstrdup(tb->rows), *save = NULL;
	static char error[100];
	int rc = 0;

	buf_printf(&tb->log, "%s%s", tb->log.len > 0 ? " " : "", key);
	for (char *row = strtok_r(rows, ";", &save); row != NULL && rc == 0;
	     row = strtok_r(NULL, ";", &save)) {
		while (*row == ' ')
			row++;
		char *colon = strchr(row, ':');
		if (colon == NULL || (size_t)(colon - row) != strlen(key) ||
		    strncmp(row, key, strlen(key)) != 0)
			continue;
		const char *list = colon + 1 + (colon[1] == ' ');
		if (list[0] == '!') {
			snprintf(error, sizeof(error), "%s", list + 1);
			*error_r = error;
			rc = -1;
		} else {
			table_targets(list, targets_r);
			rc = 1;
		}
	}
	free(rows);
	return rc;
}

/* Writes the targets as "target<key>, ..." for comparison. */
static void result_text(const struct alias_result *r, struct buf *out)
{
	for (size_t i = 0; i < r->count; i++) {
		buf_printf(out, "%s%s<%s>", i > 0 ? ", " : "", r->targets[i].target,
			   r->targets[i].key);
		if (r->targets[i].local != alias_target_is_local(r->targets[i].target))
			fail_msg("target %s: local flag wrong", r->targets[i].target);
	}
}

/* ---- expansion cases ---- */

struct expand_case {
	const char *name;
	const char *table;
	const char *delimiters; /* NULL for "+" */
	unsigned max_depth, max_results;
	const char *rcpt;
	enum alias_status status;
	int code;
	const char *enhanced;
	const char *want;    /* ALIAS_OK: the targets as result_text; else the text */
	const char *lookups; /* when not NULL, the keys looked up in order */
};

#define OK(name, table, delims, rcpt, want, lookups) \
	{ name, table, delims, 0, 0, rcpt, ALIAS_OK, 250, "2.1.5", want, lookups }
#define FAIL(name, table, rcpt, status, code, enhanced, text) \
	{ name, table, NULL, 0, 0, rcpt, status, code, enhanced, text, NULL }
#define LIMITS(name, table, depth, results, rcpt, status, code, enhanced, want) \
	{ name, table, NULL, depth, results, rcpt, status, code, enhanced, want, NULL }

#define X10 "abcdefghij"
#define L62 X10 X10 X10 X10 X10 X10 "kl"
#define CHAIN10 "a0@d: a1@d; a1@d: a2@d; a2@d: a3@d; a3@d: a4@d; a4@d: a5@d; " \
		"a5@d: a6@d; a6@d: a7@d; a7@d: a8@d; a8@d: a9@d; a9@d: a10@d"

static const struct expand_case expand_cases[] = {
	/* exact, none, domain case */
	OK("none", "", NULL, "bob@d", "bob@d<>", "bob@d @d"),
	OK("exact", "a@d: b@e, c@e", NULL, "a@d", "b@e<a@d>, c@e<a@d>",
	   "a@d b@e @e c@e @e"),
	OK("domain lower-cased", "a@d.example: b@e", NULL, "a@D.Example", "b@e<a@d.example>",
	   "a@d.example b@e @e"),
	OK("local case kept", "", NULL, "Bob@d", "Bob@d<>", "Bob@d @d"),
	OK("target canonical", "a@d: B@E.ORG", NULL, "a@d", "B@e.org<a@d>", NULL),
	OK("utf-8", "j\xc3\xb6@d: b@e", NULL, "j\xc3\xb6@d", "b@e<j\xc3\xb6@d>", NULL),
	/* extension fallback and propagation */
	OK("ext +", "a@d: b@e", NULL, "a+x@d", "b+x@e<a@d>", "a+x@d a@d b+x@e b@e @e"),
	OK("ext - of +-", "a@d: b@e", "+-", "a-x@d", "b-x@e<a@d>",
	   "a-x@d a@d b-x@e b@e @e"),
	OK("ext first delimiter -", "a@d: b@e", "+-", "a-x+y@d", "b-x+y@e<a@d>",
	   "a-x+y@d a@d b-x+y@e b@e @e"),
	OK("ext first delimiter +", "a@d: b@e", "+-", "a+x-y@d", "b+x-y@e<a@d>",
	   "a+x-y@d a@d b+x-y@e b@e @e"),
	OK("ext - not a delimiter", "a@d: b@e", NULL, "a-x@d", "a-x@d<>", "a-x@d @d"),
	OK("no delimiters", "a@d: b@e", "", "a+x@d", "a+x@d<>", "a+x@d @d"),
	OK("delimiter first", "@d: c@e", NULL, "+x@d", "c@e<@d>", "+x@d @d c@e @e"),
	OK("base not a mailbox", "", NULL, "a.+x@d", "a.+x@d<>", "a.+x@d @d"),
	OK("quoted local not split", "", NULL, "\"a+b c\"@d", "\"a+b c\"@d<>",
	   "\"a+b c\"@d @d"),
	OK("no propagation on exact", "a+x@d: p@e; a@d: q@e", NULL, "a+x@d", "p@e<a+x@d>",
	   "a+x@d p@e @e"),
	OK("target has extension", "a@d: b+list@e", NULL, "a+x@d", "b+list@e<a@d>", NULL),
	OK("target has other delimiter", "a@d: b-list@e", "+-", "a+x@d", "b-list@e<a@d>", NULL),
	OK("quoted target kept", "a@d: \"b c\"@e", NULL, "a+x@d", "\"b c\"@e<a@d>", NULL),
	OK("local target kept", "a@d: pipe:/bin/robot", NULL, "a+x@d", "pipe:/bin/robot<a@d>",
	   NULL),
	OK("propagated fits 64", "a@d: " L62 "@e", NULL, "a+x@d", L62 "+x@e<a@d>", NULL),
	OK("propagated too long", "a@d: " L62 "@e", NULL, "a+xy@d", L62 "@e<a@d>", NULL),
	OK("propagation recursive", "a@d: l@d; l@d: m@e", NULL, "a+x@d", "m+x@e<l@d>",
	   "a+x@d a@d l+x@d l@d m+x@e m@e @e"),
	/* precedence: exact > extension-less > catch-all */
	OK("exact over base", "a+x@d: p@e; a@d: q@e; @d: c@e", NULL, "a+x@d", "p@e<a+x@d>",
	   "a+x@d p@e @e"),
	OK("base over catch-all", "a@d: q@e; @d: c@e", NULL, "a+x@d", "q+x@e<a@d>",
	   "a+x@d a@d q+x@e q@e @e"),
	OK("exact over catch-all", "a@d: q@e; @d: c@e", NULL, "a@d", "q@e<a@d>", "a@d q@e @e"),
	OK("catch-all", "@d: c@e", NULL, "z@d", "c@e<@d>", "z@d @d c@e @e"),
	OK("catch-all propagates", "@d: c@e", NULL, "z+x@d", "c+x@e<@d>", NULL),
	OK("catch-all other domain", "@d: c@e", NULL, "z@f", "z@f<>", "z@f @f"),
	/* recursion, self reference, duplicates */
	OK("recursion", "a@d: b@d; b@d: c@e, pipe:x", NULL, "a@d", "c@e<b@d>, pipe:x<b@d>",
	   NULL),
	OK("self", "a@d: a@d, b@e", NULL, "a@d", "a@d<a@d>, b@e<a@d>", "a@d b@e @e"),
	OK("self other case", "a@d: a@D, b@e", NULL, "a@d", "a@d<a@d>, b@e<a@d>", NULL),
	OK("self with extension", "a@d: a@d, b@e", NULL, "a+x@d", "a+x@d<a@d>, b+x@e<a@d>",
	   NULL),
	OK("self via catch-all", "@d: a@d", NULL, "x@d", "a@d<@d>", "x@d @d a@d @d"),
	OK("self catch-all direct", "@d: a@d", NULL, "a@d", "a@d<@d>", "a@d @d"),
	OK("duplicates", "l@d: a@e, a@E, m@d; m@d: a@e, c@e", NULL, "l@d",
	   "a@e<l@d>, c@e<m@d>", NULL),
	OK("local part case differs", "l@d: a@e, A@e", NULL, "l@d", "a@e<l@d>, A@e<l@d>", NULL),
	OK("diamond looked up once", "r@d: a@d, b@d; a@d: c@e; b@d: c@e, e@e", NULL, "r@d",
	   "c@e<a@d>, e@e<b@d>", "r@d a@d c@e @e b@d e@e @e"),
	OK("local targets", "a@d: maildir:/var/mail/a, webhook:https://h/x, pipe:/b a@d, "
	   "maildir:/var/mail/a, discard:, error:5.1.1 gone, hold:, vacation:v, mask:m, bounce:b, "
	   "mda:m",
	   NULL, "a@d",
	   "maildir:/var/mail/a<a@d>, webhook:https://h/x<a@d>, pipe:/b a@d<a@d>, discard:<a@d>, "
	   "error:5.1.1 gone<a@d>, hold:<a@d>, vacation:v<a@d>, mask:m<a@d>, bounce:b<a@d>, "
	   "mda:m<a@d>",
	   "a@d"),
	/* loops and limits */
	FAIL("loop", "a@d: b@d; b@d: a@d", "a@d", ALIAS_PERMFAIL, 550, "5.4.6",
	     "alias loop: a@d -> b@d -> a@d"),
	FAIL("loop later", "a@d: x@e, b@d; b@d: c@d; c@d: b@d", "a@d", ALIAS_PERMFAIL, 550,
	     "5.4.6", "alias loop: a@d -> b@d -> c@d -> b@d"),
	FAIL("loop via catch-alls", "@d: x@e; @e: y@d", "a@d", ALIAS_PERMFAIL, 550, "5.4.6",
	     "alias loop: a@d -> x@e -> y@d -> x@e"),
	FAIL("loop with extension", "a@d: b@d; b@d: a@d", "a+x@d", ALIAS_PERMFAIL, 550, "5.4.6",
	     "alias loop: a+x@d -> b+x@d -> a+x@d"),
	OK("depth 10", CHAIN10, NULL, "a0@d", "a10@d<a9@d>", NULL),
	FAIL("depth 11", CHAIN10 "; a10@d: a11@d", "a0@d", ALIAS_PERMFAIL, 550, "5.4.6",
	     "alias nesting too deep: a0@d -> a1@d -> a2@d -> a3@d -> a4@d -> a5@d -> a6@d -> "
	     "a7@d -> a8@d -> a9@d -> a10@d"),
	LIMITS("depth 2 ok", "a@d: b@d; b@d: c@d", 2, 0, "a@d", ALIAS_OK, 250, "2.1.5",
	       "c@d<b@d>"),
	LIMITS("depth 2 over", "a@d: b@d; b@d: c@d; c@d: e@e", 2, 0, "a@d", ALIAS_PERMFAIL, 550,
	       "5.4.6", "alias nesting too deep: a@d -> b@d -> c@d"),
	LIMITS("results at limit", "a@d: b@e, c@e, pipe:x", 0, 3, "a@d", ALIAS_OK, 250, "2.1.5",
	       "b@e<a@d>, c@e<a@d>, pipe:x<a@d>"),
	LIMITS("results over limit", "a@d: b@e, c@e, pipe:x, f@e", 0, 3, "a@d", ALIAS_PERMFAIL,
	       550, "5.3.0", "alias expansion gives more than 3 targets"),
	LIMITS("duplicates not counted", "a@d: b@e, c@e, b@E, c@e, pipe:x, pipe:x", 0, 3, "a@d",
	       ALIAS_OK, 250, "2.1.5", "b@e<a@d>, c@e<a@d>, pipe:x<a@d>"),
	/* errors */
	FAIL("lookup error", "a@d: !store unavailable", "a@d", ALIAS_TEMPFAIL, 451, "4.3.0",
	     "alias lookup of a@d failed: store unavailable"),
	FAIL("lookup error deeper", "a@d: b@d; b@d: !timeout", "a@d", ALIAS_TEMPFAIL, 451,
	     "4.3.0", "alias lookup of b@d failed: timeout"),
	FAIL("lookup error on catch-all", "@d: !down", "a+x@d", ALIAS_TEMPFAIL, 451, "4.3.0",
	     "alias lookup of @d failed: down"),
	FAIL("error text one line", "a@d: !down\r\nQUIT", "a@d", ALIAS_TEMPFAIL, 451, "4.3.0",
	     "alias lookup of a@d failed: down??QUIT"),
	FAIL("no targets", "a@d:", "a@d", ALIAS_TEMPFAIL, 451, "4.3.5", "alias a@d has no targets"),
	FAIL("bad target", "a@d: b@e, not an address", "a@d", ALIAS_TEMPFAIL, 451, "4.3.5",
	     "alias a@d has a bad target not an address: bad character in local part"),
	FAIL("catch-all as target", "a@d: @e", "a@d", ALIAS_TEMPFAIL, 451, "4.3.5",
	     "alias a@d has a bad target @e: empty local part"),
	FAIL("bad recipient", "", "not-an-address", ALIAS_PERMFAIL, 553, "5.1.3",
	     "bad recipient address: missing '@'"),
	FAIL("empty recipient", "", "", ALIAS_PERMFAIL, 553, "5.1.3",
	     "bad recipient address: empty local part"),
};

static void check_expand_case(const struct expand_case *c)
{
	struct table tb = { .rows = c->table };
	struct alias_opts opts = {
		.delimiters = c->delimiters != NULL ? c->delimiters : "+",
		.max_depth = c->max_depth,
		.max_results = c->max_results,
	};
	struct alias_result r;
	struct buf got = { 0 };

	int rc = alias_expand(c->rcpt, &opts, table_lookup, &tb, &r);
	expect_int(c->name, "rc", rc, c->status == ALIAS_OK ? 0 : -1);
	expect_int(c->name, "status", r.status, c->status);
	expect_int(c->name, "code", r.code, c->code);
	expect_str(c->name, "enhanced", r.enhanced, c->enhanced);
	if (c->status == ALIAS_OK) {
		result_text(&r, &got);
		expect_str(c->name, "targets", buf_str(&got), c->want);
	} else {
		expect_str(c->name, "text", r.text, c->want);
		expect_int(c->name, "targets on failure", (long)r.count, 0);
	}
	if (c->lookups != NULL)
		expect_str(c->name, "lookups", buf_str(&tb.log), c->lookups);
	alias_result_free(&r);
	buf_free(&got);
	buf_free(&tb.log);
}

static void test_expand_table(void **state)
{
	for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++)
		check_expand_case(&expand_cases[i]);
}

/* NULL options mean the defaults: no delimiters, depth 10, 1000 results. */
static void test_expand_defaults(void **state)
{
	struct buf rows = { 0 };
	struct alias_result r;

	buf_puts(&rows, "a@d: ");
	for (int i = 0; i < 1001; i++)
		buf_printf(&rows, "%sm%d@e", i > 0 ? ", " : "", i);
	struct table tb = { .rows = buf_str(&rows) };
	assert_int_equal(alias_expand("a@d", NULL, table_lookup, &tb, &r), -1);
	assert_string_equal(r.enhanced, "5.3.0");
	assert_string_equal(r.text, "alias expansion gives more than 1000 targets");
	alias_result_free(&r);
	buf_free(&tb.log);
	tb.rows = "a@d: b@e";
	assert_int_equal(alias_expand("a+x@d", NULL, table_lookup, &tb, &r), 0);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.targets[0].target, "a+x@d");
	alias_result_free(&r);
	alias_result_free(&r);
	alias_result_free(NULL);
	buf_free(&tb.log);
	buf_free(&rows);
}

/* The text of a failure fits an SMTP reply even when a store says a lot. */
static void test_expand_long_text(void **state)
{
	struct alias_result r;
	struct table tb = { 0 };
	struct buf rows = { 0 };
	char big[100];

	for (int i = 0; i < 9; i++) {
		memset(big, 'a' + i, 60);
		big[60] = '\0';
		buf_printf(&rows, "%s%s@d: ", i > 0 ? "; " : "", big);
		memset(big, 'a' + i + 1, 60);
		buf_printf(&rows, "%s@d", big);
	}
	tb.rows = buf_str(&rows);
	struct alias_opts opts = { .max_depth = 5 };
	memset(big, 'a', 60);
	strcpy(big + 60, "@d");
	assert_int_equal(alias_expand(big, &opts, table_lookup, &tb, &r), -1);
	assert_string_equal(r.enhanced, "5.4.6");
	assert_int_equal(strlen(r.text), ALIAS_TEXT_MAX);
	assert_string_equal(r.text + ALIAS_TEXT_MAX - 3, "...");
	alias_result_free(&r);
	buf_free(&tb.log);
	buf_free(&rows);
}

/* ---- helpers ---- */

struct check_case {
	const char *in;
	int key_rc, target_rc;
	bool local;
};

static const struct check_case check_cases[] = {
	{ "a@d", 0, 0, false },
	{ "A@Example.COM", 0, 0, false },
	{ "@d", 0, -1, false },
	{ "@D.example", 0, -1, false },
	{ "@", -1, -1, false },
	{ "@-d", -1, -1, false },
	{ "a", -1, -1, false },
	{ "", -1, -1, false },
	{ "j\xc3\xb6@d", 0, 0, false },
	{ "\xff@d", -1, -1, false },
	{ "pipe:/bin/x a b", -1, 0, true },
	{ "pipe:/bin/x\n", -1, -1, true },
	{ "pipe:/bin/x\targ", -1, 0, true },
	{ "pipe:/bin/x\x7f", -1, -1, true },
	{ "discard:", -1, 0, true },
	{ "error:5.1.1 no", -1, 0, true },
	{ "Pipe:/bin/x", -1, -1, false },
	{ "file:/x", -1, -1, false },
	{ "maildir:/var/mail/x", -1, 0, true },
	{ "mda:", -1, 0, true },
	{ "webhook:https://x", -1, 0, true },
	{ "hold:", -1, 0, true },
	{ "vacation:", -1, 0, true },
	{ "mask:", -1, 0, true },
	{ "bounce:", -1, 0, true },
};

static void test_checks(void **state)
{
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		const struct check_case *c = &check_cases[i];
		const char *error = NULL;
		expect_int(c->in, "key", alias_key_check(c->in, &error), c->key_rc);
		expect_int(c->in, "target", alias_target_check(c->in, &error), c->target_rc);
		expect_int(c->in, "local", alias_target_is_local(c->in), c->local);
	}
}

static void test_targets_list(void **state)
{
	struct alias_targets t = { 0 };

	for (int i = 0; i < 20; i++)
		alias_targets_add(&t, "x@y");
	assert_int_equal(t.count, 20);
	alias_targets_clear(&t);
	assert_int_equal(t.count, 0);
	alias_targets_add(&t, "a@b");
	assert_string_equal(t.items[0], "a@b");
	alias_targets_free(&t);
	assert_null(t.items);
	alias_targets_free(&t);
	alias_targets_free(NULL);
}

/* ---- the aliases file ---- */

struct file_case {
	const char *name;
	const char *text;
	const char *domain;
	int rc;
	const char *entries; /* "LINE KEY: TARGET, TARGET" lines */
	const char *errors;  /* one problem a line */
};

#define FILE_OK(name, text, entries) { name, text, "d", 0, entries, "" }
#define FILE_BAD(name, text, entries, errors) { name, text, "d", -1, entries, errors }

static const struct file_case file_cases[] = {
	FILE_OK("normal",
		"# /etc/aliases\n"
		"root: bob, alice@Example.ORG\n"
		"postmaster: root\n"
		"\n"
		"bot: \"|/usr/bin/robot --flag\"\n"
		"Mixed.Case: Bob\n",
		"2 root@d: bob@d, alice@example.org\n"
		"3 postmaster@d: root@d\n"
		"5 bot@d: pipe:/usr/bin/robot --flag\n"
		"6 mixed.case@d: Bob@d"),
	FILE_OK("continuation",
		"list: a,\n"
		"  b,\n"
		"\tc\n"
		"# a comment between\n"
		"\n"
		"   # an indented comment\n"
		"  , d\n"
		"next: e\n",
		"1 list@d: a@d, b@d, c@d, d@d\n"
		"8 next@d: e@d"),
	FILE_OK("quoted names",
		"\"John Doe\": jd\n"
		"\"plain\" : x\n"
		"\"a\\\"b\": y\n",
		"1 \"john doe\"@d: jd@d\n"
		"2 plain@d: x@d\n"
		"3 \"a\\\"b\"@d: y@d"),
	FILE_OK("qualified names and catch-all",
		"a@Other.Example: x\n"
		"@Catch.Example: y@z\n",
		"1 a@other.example: x@d\n"
		"2 @catch.example: y@z"),
	FILE_OK("pipes",
		"a: |/bin/cat\n"
		"b: \"| /bin/x -y 'a, b'\"\n"
		"c: \"|grep \\\"x\\\" \\\\d \\w\", c2\n"
		"d: |/bin/x arg  ,  e\n",
		"1 a@d: pipe:/bin/cat\n"
		"2 b@d: pipe:/bin/x -y 'a, b'\n"
		"3 c@d: pipe:grep \"x\" \\d \\w, c2@d\n"
		"4 d@d: pipe:/bin/x arg, e@d"),
	FILE_OK("other targets",
		"a: error:nouser No such user\n"
		"b: \"error:5.1.1 gone, sorry\"\n"
		"c: webhook:https://h.example/x, discard:\n"
		"d: \\d, \"john doe\"@e.org\n"
		"e: \"quoted local\", \"q@e.org\"\n"
		"f: a, , b,\n",
		"1 a@d: error:nouser No such user\n"
		"2 b@d: error:5.1.1 gone, sorry\n"
		"3 c@d: webhook:https://h.example/x, discard:\n"
		"4 d@d: d@d, \"john doe\"@e.org\n"
		"5 e@d: \"quoted local\"@d, q@e.org\n"
		"6 f@d: a@d, b@d"),
	FILE_OK("utf-8, CRLF and BOM",
		"\xef\xbb\xbfj\xc3\xb6: x\r\n"
		"# caf\xe9 in Latin-1 in a comment\r\n"
		"k: \xc3\xa9@e\r\n",
		"1 j\xc3\xb6@d: x@d\n"
		"3 k@d: \xc3\xa9@e"),
	FILE_OK("empty", "", ""),
	FILE_OK("only comments", "# x\n\n   \n\t# y", ""),
	FILE_BAD("unsupported",
		 "a: /var/log/a\n"
		 "b: x,\n"
		 "  :include:/etc/list\n"
		 "  , y\n"
		 "c: \"/q\", z\n"
		 "d: ok\n",
		 "6 d@d: ok@d",
		 "f:1: /var/log/a: file delivery is not supported\n"
		 "f:3: :include:/etc/list: :include: is not supported, list the addresses instead\n"
		 "f:5: /q: file delivery is not supported"),
	FILE_BAD("bad lines, rest parsed",
		 "bad line without colon\n"
		 "good: x\n"
		 "foo bar: x\n"
		 "  cont\n"
		 "ok2: y\n"
		 "  cont2\n"
		 "  \n"
		 " orphan\n",
		 "2 good@d: x@d\n"
		 "5 ok2@d: y@d, cont2@d, orphan@d",
		 "f:1: missing ':' after the name\n"
		 "f:3: foo bar: bad character in local part"),
	FILE_BAD("continuation first",
		 "  a, b\n"
		 "  c\n"
		 "x: y\n",
		 "3 x@d: y@d",
		 "f:1: continuation line without a name"),
	FILE_BAD("duplicates", "a: x\nb: y\nA: z\n@D: p\n@d: q\n",
		 "1 a@d: x@d\n2 b@d: y@d\n4 @d: p@d",
		 "f:3: a@d: defined again (first defined on line 1), ignored\n"
		 "f:5: @d: defined again (first defined on line 4), ignored"),
	FILE_BAD("no targets", "a:\nb: ,\nc: x\nd:\n  \n", "3 c@d: x@d",
		 "f:1: a@d: no targets\nf:2: b@d: no targets\nf:4: d@d: no targets"),
	FILE_BAD("bad targets", "a: bob alice\nb: x@\nc: @e\nd: |\ne: \\\nf: \"a\"b\n",
		 "",
		 "f:1: bob alice: bad character in local part\n"
		 "f:2: x@: missing domain\n"
		 "f:3: @e: empty local part\n"
		 "f:4: empty command after '|'\n"
		 "f:5: empty name after '\\'\n"
		 "f:6: \"a\"b: bad character in local part"),
	FILE_BAD("bad names", "\"abc: x\n: x\n@: x\n\"a\" b: x\na\"b: x\n@bad_d: x\n", "",
		 "f:1: unbalanced quote in name\n"
		 "f:2: empty name\n"
		 "f:3: @: missing domain\n"
		 "f:4: missing ':' after the name\n"
		 "f:5: a\"b: bad character in local part\n"
		 "f:6: @bad_d: bad character in domain"),
	FILE_BAD("hostile bytes",
		 "a: \"|cmd\n"
		 "b: x\x01y\n"
		 "c: x\xff\n"
		 "d: x\ry\n"
		 "e: \x7f\n"
		 "f: ok\n",
		 "6 f@d: ok@d",
		 "f:1: unbalanced quote\n"
		 "f:2: control character 0x01 in line\n"
		 "f:3: invalid UTF-8 in line\n"
		 "f:4: control character 0x0d in line\n"
		 "f:5: control character 0x7f in line"),
	FILE_BAD("bad continuation drops entry", "a: x,\n  y\x02\n  z\nb: w\n", "4 b@d: w@d",
		 "f:2: control character 0x02 in line"),
	{ "no default domain", "a: b\nc@e: f\nx@e: g@h\n", NULL, -1, "3 x@e: g@h",
	  "f:1: a: unqualified name and no default domain\n"
	  "f:2: f: unqualified name and no default domain" },
};

static void file_entries_text(const struct aliasfile *f, struct buf *out)
{
	for (size_t i = 0; i < f->count; i++) {
		const struct aliasfile_entry *e = &f->entries[i];
		buf_printf(out, "%s%u %s:", i > 0 ? "\n" : "", e->line, e->key);
		for (size_t t = 0; t < e->targets.count; t++)
			buf_printf(out, "%s %s", t > 0 ? "," : "", e->targets.items[t]);
	}
}

static void test_file_table(void **state)
{
	for (size_t i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		const struct file_case *c = &file_cases[i];
		struct aliasfile *f = NULL;
		struct buf entries = { 0 }, errors = { 0 };
		int rc = aliasfile_parse("f", c->text, strlen(c->text), c->domain, &f);
		file_entries_text(f, &entries);
		for (size_t e = 0; e < f->nerrors; e++)
			buf_printf(&errors, "%s%s", e > 0 ? "\n" : "", f->errors[e]);
		expect_str(c->name, "entries", buf_str(&entries), c->entries);
		expect_str(c->name, "errors", buf_str(&errors), c->errors);
		expect_int(c->name, "rc", rc, c->rc);
		aliasfile_free(&f);
		assert_null(f);
		buf_free(&entries);
		buf_free(&errors);
	}
}

/* Limits: line length, targets per entry, number of problems shown. */
static void test_file_limits(void **state)
{
	struct buf text = { 0 };
	struct aliasfile *f;

	buf_puts(&text, "a: x");
	for (int i = 0; i < ALIASFILE_LINE_MAX; i++)
		buf_putc(&text, 'y');
	buf_puts(&text, "\nb: ");
	for (int i = 0; i < ALIASFILE_TARGETS_MAX + 1; i++)
		buf_printf(&text, "%st%d", i % 100 == 0 ? "\n  " : ", ", i);
	buf_puts(&text, "\nc: ");
	for (int i = 0; i < ALIASFILE_TARGETS_MAX; i++)
		buf_printf(&text, "%st%d", i % 100 == 0 ? "\n  " : ", ", i);
	buf_puts(&text, "\n");
	assert_int_equal(aliasfile_parse("f", text.data, text.len, "d", &f), -1);
	assert_int_equal(f->nerrors, 2);
	assert_string_equal(f->errors[0], "f:1: line longer than 8192 bytes");
	assert_string_equal(f->errors[1], "f:13: more than 1000 targets");
	assert_int_equal(f->count, 1);
	assert_string_equal(f->entries[0].key, "c@d");
	assert_int_equal(f->entries[0].targets.count, ALIASFILE_TARGETS_MAX);
	aliasfile_free(&f);

	buf_reset(&text);
	for (int i = 0; i < ALIASFILE_ERRORS_MAX + 5; i++)
		buf_puts(&text, "bad\n");
	assert_int_equal(aliasfile_parse("f", text.data, text.len, "d", &f), -1);
	assert_int_equal(f->nerrors, ALIASFILE_ERRORS_MAX + 1);
	assert_string_equal(f->errors[ALIASFILE_ERRORS_MAX], "f:101: 5 more problems not shown");
	aliasfile_free(&f);
	aliasfile_free(&f);
	buf_free(&text);
}

/* A parsed file serves as a lookup table, names compared without case. */
static void test_file_expand(void **state)
{
	const char *text = "Root: bob, Ops\nops: alice@e.org, \"|/bin/page\"\nbob: bob, carol\n"
			   "@Other.Example: root\n";
	struct aliasfile *f;
	struct alias_result r;
	struct buf got = { 0 };
	struct alias_opts opts = { .delimiters = "+" };

	assert_int_equal(aliasfile_parse("f", text, strlen(text), "d", &f), 0);
	assert_int_equal(alias_expand("ROOT+x@D", &opts, aliasfile_lookup, f, &r), 0);
	result_text(&r, &got);
	assert_string_equal(buf_str(&got), "bob+x@d<bob@d>, carol+x@d<bob@d>, "
					   "alice+x@e.org<Ops@d>, pipe:/bin/page<Ops@d>");
	alias_result_free(&r);
	buf_reset(&got);
	assert_int_equal(alias_expand("nobody@other.EXAMPLE", &opts, aliasfile_lookup, f, &r), 0);
	result_text(&r, &got);
	assert_string_equal(buf_str(&got), "bob@d<bob@d>, carol@d<bob@d>, alice@e.org<Ops@d>, "
					   "pipe:/bin/page<Ops@d>");
	alias_result_free(&r);
	aliasfile_free(&f);
	buf_free(&got);
}

static void test_file_load(void **state)
{
	char path[] = "/tmp/postern-test-alias-XXXXXX";
	int fd = mkstemp(path);
	struct aliasfile *f;
	const char *text = "a: b\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(aliasfile_load(path, "d", &f), 0);
	assert_int_equal(f->count, 1);
	assert_string_equal(f->entries[0].targets.items[0], "b@d");
	aliasfile_free(&f);
	unlink(path);
	assert_int_equal(aliasfile_load(path, "d", &f), -1);
	assert_int_equal(f->count, 0);
	assert_int_equal(f->nerrors, 1);
	char *want = xasprintf("%s: No such file or directory", path);
	assert_string_equal(f->errors[0], want);
	free(want);
	aliasfile_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand_table),
		cmocka_unit_test(test_expand_defaults),
		cmocka_unit_test(test_expand_long_text),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_targets_list),
		cmocka_unit_test(test_file_table),
		cmocka_unit_test(test_file_limits),
		cmocka_unit_test(test_file_expand),
		cmocka_unit_test(test_file_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
