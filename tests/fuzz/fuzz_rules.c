/* libFuzzer target for the rule files (src/route/): the input is a variables file, a line
   "%%", then rules loaded both as a transport policy and as rewrite rules. Besides memory
   errors it checks that a load either succeeds or names "fuzz:LINE:" in every error line,
   that matching addresses made from the input finds rules of this file, that every next hop
   found formats to text that parses back to the same text, and the rewrite_address
   contract. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/nexthop.h"
#include "route/policy.h"
#include "route/rewrite.h"
#include "route/vars.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
	if (!cond)
		abort();
}

/* Every line starts with "name:"; the first one, and all but a final "more errors" line,
   with "name:LINE: ". */
static void check_errors(const char *errors, const char *name)
{
	size_t n = strlen(name);

	require(errors != NULL && errors[0] != '\0');
	for (const char *line = errors; line != NULL; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		require(strncmp(line, name, n) == 0 && line[n] == ':');
		const char *p = line + n + 1;
		if (strncmp(p, " ", 1) == 0 && strstr(p, "more errors not shown") != NULL)
			continue;
		require(*p >= '1' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		require(p[0] == ':' && p[1] == ' ');
	}
}

static void check_nexthop(const struct nexthop *hop)
{
	struct buf a = { 0 }, b = { 0 };
	struct nexthop again;
	const char *error;

	nexthop_format(hop, &a);
	require(nexthop_parse(buf_str(&a), &again, &error) == 0);
	require(again.kind == hop->kind);
	nexthop_format(&again, &b);
	require(strcmp(buf_str(&a), buf_str(&b)) == 0);
	nexthop_clear(&again);
	buf_free(&a);
	buf_free(&b);
}

static void check_rewrite(const struct rewrite *rw, const char *address)
{
	char out[REWRITE_ADDRESS_MAX + 1];

	for (int dir = REWRITE_FROM; dir <= REWRITE_BOTH; dir++) {
		int rc = rewrite_address(rw, (enum rewrite_dir)dir, address, out, sizeof(out));
		require(rc >= -1 && rc <= 1);
		if (rc == 1)
			require(strlen(out) <= REWRITE_ADDRESS_MAX && strcmp(out, address) != 0);
		else if (strlen(address) < sizeof(out))
			require(strcmp(out, address) == 0);
		if (address[0] == '\0')
			require(rc == 0);
	}
}

/* Addresses made from the first word of a line: as it is, as a domain, with an extension,
   and as a parent of a subdomain. */
static void check_word(const struct policy *p, const struct rewrite *rw, const char *word)
{
	static const char *const forms[] = { "%s", "user@%s", "user+ext@%s", "a@sub.%s", "%s@x" };
	char address[600];

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		snprintf(address, sizeof(address), forms[i], word);
		if (p != NULL) {
			const struct policy_rule *r = policy_match(p, address, "+-");
			require(r == NULL || (r->line >= 1 && strcmp(r->file, "fuzz") == 0));
			if (r != NULL)
				check_nexthop(&r->nexthop);
		}
		if (rw != NULL)
			check_rewrite(rw, address);
	}
}

static void check_lines(const struct policy *p, const struct rewrite *rw, const char *text)
{
	char word[300];
	int lines = 0;

	check_word(p, rw, "");
	for (const char *s = text; *s != '\0' && lines < 20; lines++) {
		size_t skip = strspn(s, " \t"), n = strcspn(s + skip, " \t\n");
		snprintf(word, sizeof(word), "%.*s", (int)(n < 299 ? n : 299), s + skip);
		check_word(p, rw, word);
		s = strchr(s, '\n');
		if (s == NULL)
			break;
		s++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *rules, *sep, *errors = NULL;
	struct vars *vars = NULL;
	struct policy *p = NULL;
	struct rewrite *rw = NULL;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	sep = strstr(text, "%%\n");
	rules = sep != NULL ? sep + 3 : text;
	if (sep != NULL && vars_parse("fuzzvars", text, (size_t)(sep - text), &vars, &errors) < 0) {
		require(vars == NULL);
		check_errors(errors, "fuzzvars");
		free(errors);
	}
	size_t len = size - (size_t)(rules - text);
	unsigned available = size > 0 && data[0] & 1 ? NEXTHOP_ALL : NEXTHOP_ALL & ~NEXTHOP_BIT(NEXTHOP_WEBHOOK);
	if (policy_parse("fuzz", rules, len, vars, available, &p, &errors) < 0) {
		require(p == NULL);
		check_errors(errors, "fuzz");
		free(errors);
	}
	if (rewrite_parse("fuzz", rules, len, vars, &rw, &errors) < 0) {
		require(rw == NULL);
		check_errors(errors, "fuzz");
		free(errors);
	}
	if (p != NULL || rw != NULL)
		check_lines(p, rw, rules);
	policy_free(&p);
	rewrite_free(&rw);
	vars_free(&vars);
	free(text);
	return 0;
}
