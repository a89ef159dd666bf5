#include "route/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "queue/qfile.h"
#include "smtp/command.h"
#include "util/buf.h"
#include "util/xalloc.h"

struct router {
	struct vars *vars;
	struct rewrite *rewrite;
	struct policy *policy;
	bool rewrite_headers;
	char *delimiters;
	unsigned refs; /* the loader's, and one per message in cleanup (router_ref) */
};

static void router_add_errors(struct buf *all, char *errors)
{
	if (errors == NULL)
		return;
	if (all->len > 0)
		buf_puts(all, "\n");
	buf_puts(all, errors);
	free(errors);
}

int router_load(const struct config *conf, struct router **router_r, char **errors_r)
{
	struct router *r = xcalloc(1, sizeof(*r));
	r->refs = 1;
	struct buf errors = { 0 };
	char *e = NULL;
	r->rewrite_headers = conf->rewrite_headers;
	r->delimiters = xstrdup(conf->recipient_delimiter);
	if (conf->transport_variables[0] != '\0' && vars_load(conf->transport_variables, &r->vars, &e) < 0)
		router_add_errors(&errors, e);
	/* Both rule files are read even when one is bad, so that one reload shows every
	   problem; without their variables they would only repeat "undefined variable". */
	bool vars_ok = errors.len == 0;
	e = NULL;
	if (vars_ok && conf->rewrite_rules[0] != '\0' &&
	    rewrite_load(conf->rewrite_rules, r->vars, &r->rewrite, &e) < 0)
		router_add_errors(&errors, e);
	e = NULL;
	if (vars_ok && conf->transport_rules[0] != '\0' &&
	    policy_load(conf->transport_rules, r->vars, ROUTER_AVAILABLE, &r->policy, &e) < 0)
		router_add_errors(&errors, e);
	if (errors.len > 0) {
		router_free(&r);
		*errors_r = xstrdup(buf_str(&errors));
		buf_free(&errors);
		return -1;
	}
	*router_r = r;
	return 0;
}

struct router *router_ref(struct router *r)
{
	if (r != NULL)
		r->refs++;
	return r;
}

void router_free(struct router **rp)
{
	struct router *r = *rp;
	*rp = NULL;
	if (r == NULL || --r->refs > 0)
		return;
	vars_free(&r->vars);
	rewrite_free(&r->rewrite);
	policy_free(&r->policy);
	free(r->delimiters);
	free(r);
}

int router_rewrite(const struct router *r, enum rewrite_dir dir, const char *in, char *out,
		   size_t outlen)
{
	if (r != NULL && r->rewrite != NULL && rewrite_address(r->rewrite, dir, in, out, outlen) == 1)
		return 1;
	snprintf(out, outlen, "%s", in);
	return 0;
}

char *router_orcpt(const char *address)
{
	char xt[REWRITE_ADDRESS_MAX * 3 + 1];
	if (xtext_encode(address, xt, sizeof(xt)) < 0)
		return NULL;
	return xasprintf("rfc822;%s", xt);
}

size_t router_rewrite_envelope(const struct router *r, struct queue_envelope *env)
{
	char out[REWRITE_ADDRESS_MAX + 1];
	size_t changed = 0;
	if (router_rewrite(r, REWRITE_FROM, env->sender, out, sizeof(out)) == 1) {
		queue_envelope_set(&env->sender, out);
		changed++;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct queue_rcpt *rc = &env->rcpts[i];
		if (router_rewrite(r, REWRITE_TO, rc->address, out, sizeof(out)) != 1)
			continue;
		if (rc->orcpt == NULL)
			rc->orcpt = router_orcpt(rc->address);
		queue_envelope_set(&rc->address, out);
		changed++;
	}
	return changed;
}

const struct rewrite *router_header_rules(const struct router *r)
{
	return r != NULL && r->rewrite_headers ? r->rewrite : NULL;
}

const struct policy_rule *router_match(const struct router *r, const char *address)
{
	if (r == NULL || r->policy == NULL)
		return NULL;
	return policy_match(r->policy, address, r->delimiters);
}

bool router_covers(const struct router *r, const char *address)
{
	const struct policy_rule *rule = router_match(r, address);
	return rule != NULL && strcmp(rule->pattern, "*") != 0;
}

const struct policy_rule *router_hold(const struct router *r, const struct queue_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct policy_rule *rule = router_match(r, env->rcpts[i].address);
		if (rule != NULL && rule->nexthop.kind == NEXTHOP_HOLD)
			return rule;
	}
	return NULL;
}

size_t router_transport_count(const struct router *r)
{
	return r != NULL && r->policy != NULL ? policy_count(r->policy) : 0;
}

size_t router_rewrite_count(const struct router *r)
{
	return r != NULL && r->rewrite != NULL ? rewrite_count(r->rewrite) : 0;
}

const char *router_delimiters(const struct router *r)
{
	return r != NULL ? r->delimiters : "+";
}
