#include "route/policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route/keytab.h"
#include "route/pattern.h"
#include "route/rulefile.h"
#include "util/xalloc.h"

#define POLICY_NONE SIZE_MAX

struct policy_entry {
	struct policy_rule rule;
	struct pattern *pattern;
};

/* Rules in file order; a rule's index is its position. Each index maps a key to the lowest
   position of the rules with that key, so the winner is the lowest position found. */
struct policy {
	char *file;
	unsigned available;
	struct policy_entry *v;
	size_t n, cap;
	struct keytab *exact;      /* lower-cased address */
	struct keytab *domains;    /* domain */
	struct keytab *subdomains; /* parent of "*.parent" */
	size_t *regex;             /* positions of the regex rules, ascending */
	size_t nregex;
	size_t any;                /* position of the first "*" rule */
};

static void policy_index(struct policy *p, const struct pattern *pat, size_t pos)
{
	const char *key = pattern_key(pat);

	switch (pattern_kind(pat)) {
	case PATTERN_ANY:
		if (p->any == POLICY_NONE)
			p->any = pos;
		break;
	case PATTERN_ADDRESS:
		keytab_add(p->exact, key, strlen(key), pos);
		break;
	case PATTERN_DOMAIN:
		keytab_add(p->domains, key, strlen(key), pos);
		break;
	case PATTERN_SUBDOMAINS:
		keytab_add(p->subdomains, key, strlen(key), pos);
		break;
	case PATTERN_REGEX:
		p->regex = xrealloc(p->regex, (p->nregex + 1) * sizeof(*p->regex));
		p->regex[p->nregex++] = pos;
		break;
	}
}

static void policy_add(struct policy *p, const struct rulefile_rule *r, struct pattern *pat,
		       struct nexthop *hop)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n] = (struct policy_entry){
		.rule = { .pattern = pattern_text(pat), .nexthop = *hop, .file = p->file,
			  .line = r->line },
		.pattern = pat,
	};
	policy_index(p, pat, p->n);
	p->n++;
}

/* Checks the next hop's kind, then parses it. Returns 0, or -1 after reporting. */
static int policy_nexthop(struct policy *p, const struct rulefile_rule *r,
			  struct rulefile_errors *errors, struct nexthop *hop_r)
{
	const char *text = r->fields[1], *error;
	enum nexthop_kind kind;

	if (nexthop_kind_of(text, &kind) < 0) {
		rulefile_error(errors, r, "unknown next hop kind '%.*s'", (int)strcspn(text, ":"),
			       text);
		return -1;
	}
	if (!(p->available & NEXTHOP_BIT(kind))) {
		rulefile_error(errors, r, "agent '%s' is not available yet", nexthop_kind_name(kind));
		return -1;
	}
	if (nexthop_parse(r->rest[1], hop_r, &error) < 0) {
		rulefile_error(errors, r, "bad next hop '%.100s': %s", text, error);
		return -1;
	}
	return 0;
}

static void policy_rule_cb(void *arg, const struct rulefile_rule *r,
			   struct rulefile_errors *errors)
{
	struct policy *p = arg;
	struct pattern *pat = NULL;
	struct nexthop hop = { 0 };
	char *error = NULL;
	bool bad = false;

	if (r->nfields < 2) {
		rulefile_error(errors, r, "expected 'pattern next-hop'");
		return;
	}
	/* Both halves are checked, so that one run reports every problem of the line. */
	if (pattern_compile(r->fields[0], &pat, &error) < 0) {
		rulefile_error(errors, r, "%s", error);
		free(error);
		bad = true;
	}
	if (policy_nexthop(p, r, errors, &hop) < 0 || bad) {
		pattern_free(&pat);
		nexthop_clear(&hop);
		return;
	}
	policy_add(p, r, pat, &hop);
}

static struct policy *policy_new(const char *file, unsigned available)
{
	struct policy *p = xcalloc(1, sizeof(*p));

	p->file = xstrdup(file);
	p->available = available;
	p->exact = keytab_new();
	p->domains = keytab_new();
	p->subdomains = keytab_new();
	p->any = POLICY_NONE;
	return p;
}

static int policy_finish(int ret, struct policy *p, struct policy **policy_r)
{
	if (ret < 0)
		policy_free(&p);
	*policy_r = p;
	return ret;
}

int policy_load(const char *path, const struct vars *vars, unsigned available,
		struct policy **policy_r, char **errors_r)
{
	struct policy *p = policy_new(path, available);

	return policy_finish(rulefile_load(path, vars, policy_rule_cb, p, errors_r), p, policy_r);
}

int policy_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		 unsigned available, struct policy **policy_r, char **errors_r)
{
	struct policy *p = policy_new(name, available);

	return policy_finish(rulefile_parse(name, text, len, vars, policy_rule_cb, p, errors_r), p,
			     policy_r);
}

/* Lowers *best to the position found for key, if any. */
static void policy_lookup(const struct keytab *t, const char *key, size_t len, size_t *best)
{
	size_t pos;

	if (keytab_find(t, key, len, &pos) && pos < *best)
		*best = pos;
}

/* The lowest position among the hash-indexed rules that match s. */
static size_t policy_indexed(const struct policy *p, const struct pattern_subject *s)
{
	const char *domain = pattern_subject_domain(s);
	size_t best = p->any;

	policy_lookup(p->exact, s->folded, s->len, &best);
	if (s->stripped != NULL)
		policy_lookup(p->exact, s->stripped, s->stripped_len, &best);
	if (domain == NULL || domain[0] == '\0')
		return best;
	policy_lookup(p->domains, domain, strlen(domain), &best);
	/* Every proper parent: a.b.example.com asks for b.example.com, example.com and com. */
	for (const char *dot = strchr(domain + 1, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
		policy_lookup(p->subdomains, dot + 1, strlen(dot + 1), &best);
	return best;
}

const struct policy_rule *policy_match(const struct policy *p, const char *address,
				       const char *delimiters)
{
	struct pattern_subject s;
	size_t best;

	pattern_subject_init(&s, address, delimiters);
	best = policy_indexed(p, &s);
	/* Only a regex placed before the best indexed rule can still win. */
	for (size_t i = 0; i < p->nregex && p->regex[i] < best; i++) {
		if (pattern_match_subject(p->v[p->regex[i]].pattern, &s)) {
			best = p->regex[i];
			break;
		}
	}
	pattern_subject_free(&s);
	return best != POLICY_NONE ? &p->v[best].rule : NULL;
}

size_t policy_count(const struct policy *p)
{
	return p->n;
}

void policy_free(struct policy **p)
{
	if (*p == NULL)
		return;
	for (size_t i = 0; i < (*p)->n; i++) {
		nexthop_clear(&(*p)->v[i].rule.nexthop);
		pattern_free(&(*p)->v[i].pattern);
	}
	free((*p)->v);
	free((*p)->regex);
	keytab_free(&(*p)->exact);
	keytab_free(&(*p)->domains);
	keytab_free(&(*p)->subdomains);
	free((*p)->file);
	xfree(p);
}
