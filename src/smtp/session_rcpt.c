/* RCPT (DESIGN.md 1 and 4): the recipient is rewritten, then looked up in the store's aliases
   on a store worker (store_async.h); the session reads no further command until the answer is
   back, so pipelined commands keep their order. An alias expands the recipient at once: the
   queue file holds the final addresses, each with the address the client gave as its ORCPT.
   A recipient with no alias needs relay permission, and in a domain that has aliases it must
   have one (or a transport rule naming it): else 550 5.1.1 here, not a bounce later. */
#include "smtp/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "route/alias_store.h"
#include "route/router.h"
#include "store/store_async.h"
#include "util/log.h"
#include "util/xalloc.h"

struct rcpt_lookup {
	struct session *s;
	struct smtp_rcpt_args args;
	char rcpt[REWRITE_ADDRESS_MAX + 1];
	char delimiters[16];
	unsigned max_depth;
	struct alias_result res;
	bool alias_domain; /* no alias for rcpt, but its domain has some */
};

static bool session_domain_relayed(const struct session *s, const char *domain)
{
	size_t dl = strlen(domain);
	for (char **d = s->ctx->conf->relay_domains; *d != NULL; d++) {
		if (strcasecmp(*d, domain) == 0)
			return true;
		size_t wl = strlen(*d);
		/* "*.example.com" matches any subdomain, not example.com itself */
		if (wl > 2 && (*d)[0] == '*' && (*d)[1] == '.' && dl > wl - 1 &&
		    strcasecmp(domain + dl - (wl - 1), *d + 1) == 0)
			return true;
	}
	return false;
}

/* Each recipient keeps what the client wrote as its ORCPT when it gave none and the address
   changed (rewriting, an alias), so that reports name the address the sender knows. */
static void session_add_rcpt(struct session *s, const struct smtp_rcpt_args *args, const char *rcpt)
{
	char orcpt[sizeof(args->orcpt_type) + PROTO_ORCPT_MAX * 3 + 2];
	const char *type = args->orcpt_type, *value = args->orcpt;
	if (type[0] == '\0' && strcmp(rcpt, args->to.mailbox) != 0) {
		type = "rfc822";
		value = args->to.mailbox;
	}
	orcpt[0] = '\0';
	if (type[0] != '\0') {
		int n = snprintf(orcpt, sizeof(orcpt), "%s;", type);
		if (xtext_encode(value, orcpt + n, sizeof(orcpt) - (size_t)n) < 0)
			orcpt[0] = '\0';
	}
	queue_envelope_add_rcpt(&s->env, rcpt, args->notify, orcpt);
}

/* Relay permission: the recipient's domain is relayed, a transport rule names its route, or
   the client is trusted. */
static bool session_rcpt_permitted(const struct session *s, const struct smtp_rcpt_args *args,
				   const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	return (args->to.flags & ADDRESS_POSTMASTER) ||
	       (at != NULL && session_domain_relayed(s, at + 1)) ||
	       router_covers(s->ctx->router, rcpt) || session_client_trusted(s);
}

void session_rcpt_clear(struct session *s)
{
	for (size_t i = 0; i < s->naccepted; i++)
		free(s->accepted[i]);
	xfree(&s->accepted);
	s->naccepted = 0;
}

static void session_rcpt_accept(struct session *s, const struct smtp_rcpt_args *args)
{
	s->accepted = xrealloc(s->accepted, (s->naccepted + 1) * sizeof(*s->accepted));
	s->accepted[s->naccepted++] = xstrdup(args->to.mailbox);
	session_reply(s, 250, "2.1.5", "Ok");
}

static void session_rcpt_refuse(struct session *s, const struct smtp_rcpt_args *args, int code,
				const char *status, const char *text)
{
	s->rcpt_rejected++;
	log_info("reject: RCPT from [%s]: %d %s <%s>: %s; from=<%s>", s->addr, code, status,
		 args->to.mailbox, text, s->env.sender);
	session_reply_error(s, code, status, "<%s>: %s", args->to.mailbox, text);
}

/* A recipient that no alias names. */
static void session_rcpt_plain(struct session *s, const struct smtp_rcpt_args *args, const char *rcpt,
			       bool alias_domain)
{
	if (alias_domain && !router_covers(s->ctx->router, rcpt) && !(args->to.flags & ADDRESS_POSTMASTER)) {
		session_rcpt_refuse(s, args, 550, "5.1.1", "Recipient address rejected: User unknown");
		return;
	}
	if (!session_rcpt_permitted(s, args, rcpt)) {
		session_rcpt_refuse(s, args, 554, "5.7.1", "Relay access denied");
		return;
	}
	session_add_rcpt(s, args, rcpt);
	session_rcpt_accept(s, args);
}

/* Local targets are answered here: error: with its reply; the others but discard: (pipe:,
   maildir:, ...) have no delivery agent yet and wait (4xx) rather than bounce. Returns true
   when the RCPT was answered. */
static bool session_rcpt_local(struct session *s, const struct rcpt_lookup *l, size_t *addresses_r)
{
	*addresses_r = 0;
	for (size_t i = 0; i < l->res.count; i++) {
		const struct alias_target *t = &l->res.targets[i];
		if (!t->local) {
			(*addresses_r)++;
			continue;
		}
		struct nexthop nh;
		const char *error;
		if (nexthop_parse(t->target, &nh, &error) < 0) {
			session_rcpt_refuse(s, &l->args, 451, "4.3.5", "bad alias target");
			return true;
		}
		enum nexthop_kind kind = nh.kind;
		if (kind == NEXTHOP_ERROR)
			session_rcpt_refuse(s, &l->args, (int)nh.code,
					    nh.status[0] ? nh.status : nh.code >= 500 ? "5.0.0" : "4.0.0", nh.text);
		else if (kind != NEXTHOP_DISCARD)
			session_rcpt_refuse(s, &l->args, 451, "4.3.5", "alias target not available yet");
		nexthop_clear(&nh);
		if (kind != NEXTHOP_DISCARD)
			return true;
	}
	return false;
}

static void session_rcpt_expanded(struct session *s, const struct rcpt_lookup *l)
{
	size_t n;
	if (session_rcpt_local(s, l, &n))
		return;
	if (s->env.nrcpts + n > (size_t)s->ctx->conf->recipient_limit) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	for (size_t i = 0; i < l->res.count; i++) {
		if (!l->res.targets[i].local)
			session_add_rcpt(s, &l->args, l->res.targets[i].target);
	}
	if (n == 0) { /* only discard: the queue manager records it delivered, as pickup does */
		session_add_rcpt(s, &l->args, l->rcpt);
		queue_envelope_refuse_last(&s->env, QUEUE_DISCARDED);
	}
	log_info("%s: alias <%s> -> %zu recipients", s->id, l->rcpt, n);
	session_rcpt_accept(s, &l->args);
}

static void session_rcpt_answer(struct session *s, const struct rcpt_lookup *l, int result)
{
	if (result < 0) {
		log_warn("RCPT from [%s]: <%s>: the store cannot answer: %s", s->addr, l->args.to.mailbox,
			 l->res.text != NULL ? l->res.text : "unavailable");
		session_reply(s, 451, "4.3.0", "<%s>: Temporary lookup failure", l->args.to.mailbox);
	} else if (l->res.status != ALIAS_OK) {
		session_rcpt_refuse(s, &l->args, l->res.code, l->res.enhanced, l->res.text);
	} else if (l->res.count == 1 && l->res.targets[0].key[0] == '\0') {
		session_rcpt_plain(s, &l->args, l->rcpt, l->alias_domain);
	} else {
		session_rcpt_expanded(s, l);
	}
}

/* On a store worker. */
static int session_rcpt_job(struct store *st, void *arg)
{
	struct rcpt_lookup *l = arg;
	struct alias_opts opts = { .delimiters = l->delimiters, .max_depth = l->max_depth };
	alias_expand(l->rcpt, &opts, alias_store_lookup, st, &l->res);
	if (l->res.status == ALIAS_TEMPFAIL)
		return STORE_UNAVAILABLE;
	if (l->res.status != ALIAS_OK || l->res.count != 1 || l->res.targets[0].key[0] != '\0')
		return STORE_OK;
	const char *at = strrchr(l->rcpt, '@');
	struct store_alias_query q = { .domain = at != NULL ? at + 1 : "" };
	uint64_t n = 0;
	const char *error;
	int rc = store_alias_count(st, &q, &n, &error);
	l->alias_domain = n > 0;
	return rc;
}

static void session_rcpt_done(void *arg, int result)
{
	struct rcpt_lookup *l = arg;
	struct session *s = l->s;
	if (s->free_after_commit) {
		smtp_server_unlink(s->srv, s);
	} else if (result == STORE_CANCELLED) { /* the daemon is stopping */
		s->state = SESSION_COMMAND;
		session_reply(s, 421, "4.3.2", "%s Service shutting down", s->ctx->hostname);
		session_close(s);
	} else {
		s->state = SESSION_COMMAND;
		session_rcpt_answer(s, l, result);
		session_resume(s);
	}
	alias_result_free(&l->res);
	free(l);
}

static void session_rcpt_lookup(struct session *s, const struct smtp_rcpt_args *args, const char *rcpt)
{
	struct rcpt_lookup *l = xcalloc(1, sizeof(*l));
	l->s = s;
	l->args = *args;
	snprintf(l->rcpt, sizeof(l->rcpt), "%s", rcpt);
	snprintf(l->delimiters, sizeof(l->delimiters), "%s", router_delimiters(s->ctx->router));
	l->max_depth = (unsigned)s->ctx->conf->alias_max_depth;
	if (s->ctx->store == NULL ||
	    store_async_submit(s->ctx->store, session_rcpt_job, l, session_rcpt_done) < 0) {
		free(l);
		log_warn("RCPT from [%s]: <%s>: the store is not available", s->addr, args->to.mailbox);
		session_reply(s, 451, "4.3.0", "<%s>: Temporary lookup failure", args->to.mailbox);
		return;
	}
	s->state = SESSION_LOOKUP;
	bufferevent_disable(s->bev, EV_READ);
}

void session_rcpt(struct session *s, const char *arg)
{
	struct smtp_rcpt_args args;
	struct smtp_error err;
	if (!s->in_tx) {
		session_reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->env.nrcpts >= (size_t)s->ctx->conf->recipient_limit) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (smtp_rcpt_parse(arg, &s->offer, s->tx_smtputf8, &args, &err) < 0) {
		s->rcpt_rejected++;
		session_reply_parse_error(s, &err);
		return;
	}
	char rcpt[REWRITE_ADDRESS_MAX + 1];
	router_rewrite(s->ctx->router, REWRITE_TO, args.to.mailbox, rcpt, sizeof(rcpt));
	/* sendmail -bs writes to maildrop/ unaltered, with no store at hand (and pickup does not
	   expand aliases yet) */
	if (s->ctx->raw || strchr(rcpt, '@') == NULL) /* and the bare <postmaster> of RFC 5321 */
		session_rcpt_plain(s, &args, rcpt, false);
	else
		session_rcpt_lookup(s, &args, rcpt);
}
