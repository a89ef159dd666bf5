#include "route/rewrite.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route/pattern.h"
#include "route/rulefile.h"
#include "util/xalloc.h"

struct rewrite_rule {
	unsigned dirs;       /* enum rewrite_dir bits */
	struct pattern *old; /* DOMAIN, SUBDOMAINS or REGEX */
	char *new;           /* a domain, or for a regex a template with $1..$9 */
};

struct rewrite {
	struct rewrite_rule *v;
	size_t n, cap;
};

static int rewrite_dir_parse(const char *s, unsigned *dirs_r)
{
	static const char *const names[] = { "from", "to", "both" };
	static const unsigned dirs[] = { REWRITE_FROM, REWRITE_TO, REWRITE_BOTH };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*dirs_r = dirs[i];
			return 0;
		}
	}
	return -1;
}

/* Checks a regex rule's template: each '$' takes a group the regex has, and with every
   reference replaced by a label the result must be a domain. Returns NULL or a problem. */
static const char *rewrite_template_check(const char *tpl, unsigned groups)
{
	char probe[PROTO_DOMAIN_MAX + 1];
	size_t n = 0;

	for (const char *s = tpl; *s != '\0'; s++) {
		if (*s == '$' && (s[1] < '1' || s[1] > '9'))
			return "'$' in new must be followed by a group number 1-9";
		if (*s == '$' && (unsigned)(s[1] - '0') > groups)
			return "new refers to a group the regex does not have";
		if (n == sizeof(probe) - 1)
			return "new domain too long";
		probe[n++] = *s == '$' ? 'x' : *s;
		s += *s == '$';
	}
	return pattern_domain_valid(probe, n) ? NULL : "new is not a domain";
}

static const char *rewrite_new_check(const struct pattern *old, const char *new)
{
	if (pattern_kind(old) == PATTERN_REGEX)
		return rewrite_template_check(new, pattern_captures(old));
	if (!pattern_domain_valid(new, strlen(new)))
		return "new is not a domain";
	return NULL;
}

/* Compiles old and checks new. Returns the pattern, or NULL after reporting. */
static struct pattern *rewrite_old(const struct rulefile_rule *r, struct rulefile_errors *errors)
{
	struct pattern *old = NULL;
	char *error = NULL;
	const char *problem;

	if (pattern_compile(r->fields[1], &old, &error) < 0) {
		rulefile_error(errors, r, "%s", error);
		free(error);
		return NULL;
	}
	if (pattern_kind(old) == PATTERN_ANY || pattern_kind(old) == PATTERN_ADDRESS)
		problem = "old must be a domain, *.domain or /regex/";
	else
		problem = rewrite_new_check(old, r->fields[2]);
	if (problem != NULL) {
		rulefile_error(errors, r, "%s", problem);
		pattern_free(&old);
	}
	return old;
}

static void rewrite_rule_cb(void *arg, const struct rulefile_rule *r,
			    struct rulefile_errors *errors)
{
	struct rewrite *rw = arg;
	struct rewrite_rule rule = { 0 };

	if (r->nfields != 3) {
		rulefile_error(errors, r, "expected 'from|to|both  old  new'");
		return;
	}
	if (rewrite_dir_parse(r->fields[0], &rule.dirs) < 0)
		rulefile_error(errors, r, "bad direction '%.20s' (from, to or both)", r->fields[0]);
	rule.old = rewrite_old(r, errors);
	if (rule.old == NULL || rule.dirs == 0) {
		pattern_free(&rule.old);
		return;
	}
	rule.new = xstrdup(r->fields[2]);
	for (char *s = rule.new; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + ('a' - 'A'));
	if (rw->n == rw->cap) {
		rw->cap = rw->cap ? rw->cap * 2 : 16;
		rw->v = xrealloc(rw->v, rw->cap * sizeof(*rw->v));
	}
	rw->v[rw->n++] = rule;
}

static int rewrite_finish(int ret, struct rewrite *rw, struct rewrite **rw_r)
{
	if (ret < 0)
		rewrite_free(&rw);
	*rw_r = rw;
	return ret;
}

int rewrite_load(const char *path, const struct vars *vars, struct rewrite **rw_r,
		 char **errors_r)
{
	struct rewrite *rw = xcalloc(1, sizeof(*rw));

	return rewrite_finish(rulefile_load(path, vars, rewrite_rule_cb, rw, errors_r), rw, rw_r);
}

int rewrite_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		  struct rewrite **rw_r, char **errors_r)
{
	struct rewrite *rw = xcalloc(1, sizeof(*rw));

	return rewrite_finish(rulefile_parse(name, text, len, vars, rewrite_rule_cb, rw, errors_r),
			      rw, rw_r);
}

/* Fills the template with the captures of domain. Returns the length, or -1 when too long. */
static long rewrite_expand(const char *tpl, const char *domain, const long *spans, char *out)
{
	size_t n = 0;

	for (const char *s = tpl; *s != '\0'; s++) {
		const char *part = s;
		size_t len = 1;
		if (*s == '$') {
			int g = *++s - '0';
			long from = spans[2 * g], to = spans[2 * g + 1];
			part = domain + (from >= 0 ? from : 0);
			len = from >= 0 && to >= from ? (size_t)(to - from) : 0;
		}
		if (n + len > PROTO_DOMAIN_MAX)
			return -1;
		memcpy(out + n, part, len);
		n += len;
	}
	out[n] = '\0';
	return (long)n;
}

static int rewrite_apply(const struct rewrite_rule *rule, const char *domain, const long *spans,
			 char *out)
{
	long n;

	if (pattern_kind(rule->old) != PATTERN_REGEX) {
		strcpy(out, rule->new);
		return 1;
	}
	n = rewrite_expand(rule->new, domain, spans, out);
	return n >= 0 && pattern_domain_valid(out, (size_t)n) ? 1 : -1;
}

int rewrite_domain(const struct rewrite *rw, enum rewrite_dir dir, const char *domain,
		   size_t len, char *out)
{
	long spans[2 * PATTERN_CAPTURES];

	for (size_t i = 0; i < rw->n; i++) {
		const struct rewrite_rule *rule = &rw->v[i];
		if ((rule->dirs & dir) && pattern_match_domain(rule->old, domain, len, spans))
			return rewrite_apply(rule, domain, spans, out);
	}
	return 0;
}

/* Rewrites into out; returns as rewrite_address but leaves out alone unless it returns 1. */
static int rewrite_address_try(const struct rewrite *rw, enum rewrite_dir dir, const char *in,
			       char *out, size_t outlen)
{
	const char *at = strrchr(in, '@');
	char domain[PROTO_DOMAIN_MAX + 1], new[PROTO_DOMAIN_MAX + 1];
	size_t dlen, llen, nlen;
	int ret;

	if (at == NULL || (dlen = strlen(at + 1)) == 0 || dlen > PROTO_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i <= dlen; i++)
		domain[i] = at[1 + i] >= 'A' && at[1 + i] <= 'Z' ? (char)(at[1 + i] + 32) : at[1 + i];
	if ((ret = rewrite_domain(rw, dir, domain, dlen, new)) <= 0)
		return ret;
	llen = (size_t)(at - in);
	nlen = strlen(new);
	if (llen + 1 + nlen > REWRITE_ADDRESS_MAX || llen + 1 + nlen >= outlen)
		return -1;
	if (strcmp(new, at + 1) == 0)
		return 0;
	memcpy(out, in, llen + 1);
	memcpy(out + llen + 1, new, nlen + 1);
	return 1;
}

int rewrite_address(const struct rewrite *rw, enum rewrite_dir dir, const char *in, char *out,
		    size_t outlen)
{
	/* The null sender stays null: a domain cannot be given to nothing. */
	int ret = in[0] != '\0' ? rewrite_address_try(rw, dir, in, out, outlen) : 0;

	if (ret != 1 && outlen > 0) {
		size_t len = strlen(in);
		if (len < outlen)
			memcpy(out, in, len + 1);
		else
			out[0] = '\0';
	}
	return ret;
}

size_t rewrite_count(const struct rewrite *rw)
{
	return rw->n;
}

void rewrite_free(struct rewrite **rw)
{
	if (*rw == NULL)
		return;
	for (size_t i = 0; i < (*rw)->n; i++) {
		pattern_free(&(*rw)->v[i].old);
		free((*rw)->v[i].new);
	}
	free((*rw)->v);
	xfree(rw);
}
