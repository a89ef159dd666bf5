/* Destinations: one queue of jobs per next hop, with a concurrency window that starts small,
   grows with each success and shrinks on failure, and a dead-destination back-off, so that
   one slow or broken peer cannot starve the others. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "queue/qmgr_int.h"
#include "route/router.h"
#include "smtp/command.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

static unsigned qmgr_hash(const char *s)
{
	unsigned h = 5381;
	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h % QMGR_HASH;
}

static struct qdest *qmgr_dest(struct qmgr *q, const struct smtp_nexthop *hop)
{
	char key[sizeof(((struct qdest *)0)->key)];
	snprintf(key, sizeof(key), "%s:%s%s:%d", hop->lmtp ? "lmtp" : "smtp", hop->mx ? "mx:" : "",
		 hop->host, hop->port);
	unsigned h = qmgr_hash(key);
	for (struct qdest *d = q->dests[h]; d != NULL; d = d->hnext) {
		if (strcmp(d->key, key) == 0)
			return d;
	}
	struct qdest *d = xcalloc(1, sizeof(*d));
	memcpy(d->key, key, sizeof(d->key));
	d->hop = *hop;
	d->window = (unsigned)q->ctx->conf->initial_destination_concurrency;
	d->hnext = q->dests[h];
	q->dests[h] = d;
	return d;
}

/* LMTP hops keep the parser's choice (no TLS on a local socket); SMTP ones follow
   smtp_tls_security_level. */
static void qmgr_hop_tls(const struct config *conf, struct smtp_nexthop *hop)
{
	if (hop->lmtp)
		return;
	hop->tls = conf->smtp_tls_security_level[0] == 'e'   ? SMTP_TLS_ENCRYPT
		   : conf->smtp_tls_security_level[0] == 'n' ? SMTP_TLS_NONE
							     : SMTP_TLS_MAY;
}

/* The recipient's domain by its MX records, or an address literal as is. */
static void qmgr_nexthop_mx(struct qmgr *q, const char *address, struct smtp_nexthop *hop)
{
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : q->ctx->hostname;
	const char *error;
	memset(hop, 0, sizeof(*hop));
	if (domain[0] != '[' || smtp_nexthop_parse(domain, false, hop, &error) < 0) {
		hop->mx = true;
		hop->port = 25;
		snprintf(hop->host, sizeof(hop->host), "%s", domain);
	}
	qmgr_hop_tls(q->ctx->conf, hop);
}

/* The next hop of one recipient: the relay host (one per message, in turn), an address
   literal as is, or the MX of the domain. */
static void qmgr_nexthop(struct qmgr *q, const struct qmsg *m, const char *address,
			 struct smtp_nexthop *hop)
{
	const struct config *conf = q->ctx->conf;
	const char *error;
	if (conf->relayhost[0] != NULL) {
		size_t n = 0;
		while (conf->relayhost[n] != NULL)
			n++;
		const char *spec = conf->relayhost[(m->id[QUEUE_ID_LEN - 1] + q->relay_rr) % n];
		bool lmtp = strncmp(spec, "lmtp:", 5) == 0;
		if (smtp_nexthop_parse(lmtp ? spec + 5 : spec, lmtp, hop, &error) == 0) {
			qmgr_hop_tls(conf, hop);
			return;
		}
		log_error("relayhost %s: %s", spec, error);
	}
	qmgr_nexthop_mx(q, address, hop);
}

static void qmgr_record(struct qmsg *m, const struct delivery_result *r);

/* A transport rule's next hop, through the same parser as relayhost so that "[host]" and
   bare names mean the same in both places. Returns 0, or -1 (logged) for a hop that cannot be. */
static int qmgr_rule_hop(struct qmgr *q, const struct qmsg *m, const char *address,
			 const struct policy_rule *rule, struct smtp_nexthop *hop)
{
	const struct nexthop *nh = &rule->nexthop;
	const struct nexthop_host *h = nh->nhosts > 0 ? &nh->hosts[(m->id[QUEUE_ID_LEN - 1] + q->relay_rr) % nh->nhosts] : NULL;
	bool lmtp = nh->kind == NEXTHOP_LMTP_INET || nh->kind == NEXTHOP_LMTP_UNIX;
	char spec[PROTO_DOMAIN_MAX + 16 + 4096];
	if (h == NULL && nh->kind == NEXTHOP_MX) { /* mx: the recipient's domain, as without a rule */
		qmgr_nexthop_mx(q, address, hop);
		return 0;
	}
	if (nh->kind == NEXTHOP_LMTP_UNIX)
		snprintf(spec, sizeof(spec), "unix:%s", nh->path);
	else if (h->bracketed || h->ipv6 || (lmtp && h->port == 0))
		snprintf(spec, sizeof(spec), "[%s]:%u", h->host, h->port ? h->port : lmtp ? 24 : 25);
	else
		snprintf(spec, sizeof(spec), h->port ? "%s:%u" : "%s", h->host, h->port);
	const char *error;
	if (smtp_nexthop_parse(spec, lmtp, hop, &error) < 0) {
		log_error("%s: %s:%u: next hop %s: %s", m->id, rule->file, rule->line, spec, error);
		return -1;
	}
	qmgr_hop_tls(q->ctx->conf, hop);
	return 0;
}

/* What the transport policy says for recipient i: a next hop (returns true with hop set), or
   a result at once: discard, error, or a hop that cannot be (deferred, logged). */
/* A recipient refused at intake ("CODE D.D.D text": an alias loop or an error: target of a
   local submission, an alias that only discards) ends like a delivery: 5xx bounces, 4xx
   defers until it expires, 2xx is done. */
static void qmgr_refused(struct qmsg *m, size_t i, const char *refusal)
{
	struct delivery_result res;
	int code = atoi(refusal);
	char dsn[16] = "";
	int used = 0;
	sscanf(refusal, "%*d %15s %n", dsn, &used);
	enum delivery_status st = code >= 500 ? DELIVERY_BOUNCE : code >= 400 ? DELIVERY_DEFER : DELIVERY_DONE;
	delivery_result_set(&res, i, st, code, dsn[0] != '\0' ? dsn : code >= 500 ? "5.0.0" : "4.0.0", "%s",
			    used > 0 ? refusal + used : refusal);
	log_info("%s: to=<%s>, status=%s (at intake: %s)", m->id, m->env.rcpts[i].address,
		 st == DELIVERY_BOUNCE ? "bounced" : st == DELIVERY_DEFER ? "deferred" : "discarded", refusal);
	qmgr_record(m, &res);
}

static bool qmgr_route(struct qmgr *q, struct qmsg *m, size_t i, struct smtp_nexthop *hop)
{
	const char *address = m->env.rcpts[i].address;
	if (m->env.rcpts[i].refusal != NULL) {
		qmgr_refused(m, i, m->env.rcpts[i].refusal);
		return false;
	}
	const struct policy_rule *rule = router_match(q->ctx->router, address);
	if (rule == NULL || rule->nexthop.kind == NEXTHOP_HOLD) { /* held at intake, since released */
		qmgr_nexthop(q, m, address, hop);
		return true;
	}
	const struct nexthop *nh = &rule->nexthop;
	struct delivery_result res;
	switch (nh->kind) {
	case NEXTHOP_DISCARD:
		delivery_result_set(&res, i, DELIVERY_DONE, 250, "2.0.0", "discarded by %s:%u%s%s", rule->file,
				    rule->line, nh->text ? ": " : "", nh->text ? nh->text : "");
		break;
	case NEXTHOP_ERROR:
		delivery_result_set(&res, i, nh->code >= 500 ? DELIVERY_BOUNCE : DELIVERY_DEFER, (int)nh->code,
				    nh->status[0] ? nh->status : nh->code >= 500 ? "5.0.0" : "4.0.0", "%s", nh->text);
		break;
	default:
		if (qmgr_rule_hop(q, m, address, rule, hop) == 0)
			return true;
		delivery_result_set(&res, i, DELIVERY_DEFER, 0, "4.3.5", "bad next hop in %s:%u", rule->file,
				    rule->line);
	}
	log_info("%s: to=<%s>, rule=%s:%u, status=%s (%s)", m->id, address, rule->file, rule->line,
		 res.status == DELIVERY_DONE ? "discarded" : res.status == DELIVERY_BOUNCE ? "bounced" : "deferred",
		 res.text);
	qmgr_record(m, &res);
	return false;
}

static struct qjob *qmgr_job_new(struct qmsg *m, struct qdest *d)
{
	struct qjob *j = xcalloc(1, sizeof(*j));
	j->msg = m;
	j->dest = d;
	j->hop = d->hop;
	return j;
}

static void qmgr_dest_ready(struct qmgr *q, struct qdest *d)
{
	if (d->in_ring || d->head == NULL)
		return;
	d->in_ring = true;
	d->rnext = NULL;
	if (q->ring_tail != NULL)
		q->ring_tail->rnext = d;
	else
		q->ring = d;
	q->ring_tail = d;
}

static struct qdest *qmgr_ring_pop(struct qmgr *q)
{
	struct qdest *d = q->ring;
	if (d == NULL)
		return NULL;
	q->ring = d->rnext;
	if (q->ring == NULL)
		q->ring_tail = NULL;
	d->in_ring = false;
	return d;
}

static void qmgr_dest_push(struct qmgr *q, struct qdest *d, struct qjob *j)
{
	if (d->tail != NULL)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->queued++;
	j->msg->jobs++;
	qmgr_dest_ready(q, d);
}

/* Groups the message's pending recipients by next hop, at most destination_recipient_limit to
   a job, and queues the jobs at their destinations. */
void qmgr_sched_add(struct qmgr *q, struct qmsg *m)
{
	size_t limit = (size_t)q->ctx->conf->destination_recipient_limit;
	struct qjob **open = xcalloc(m->env.nrcpts, sizeof(*open));
	size_t nopen = 0;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (m->rcpts[i].state != QRCPT_PENDING)
			continue;
		struct smtp_nexthop hop;
		if (!qmgr_route(q, m, i, &hop))
			continue;
		struct qdest *d = qmgr_dest(q, &hop);
		struct qjob *j = NULL;
		for (size_t k = 0; k < nopen && j == NULL; k++)
			j = open[k]->dest == d ? open[k] : NULL;
		if (j == NULL)
			j = open[nopen++] = qmgr_job_new(m, d);
		const struct queue_rcpt *r = &m->env.rcpts[i];
		if (j->nrcpts == j->cap) {
			j->cap = j->cap ? j->cap * 2 : 2;
			j->rcpts = xrealloc(j->rcpts, j->cap * sizeof(*j->rcpts));
		}
		j->rcpts[j->nrcpts++] = (struct delivery_rcpt){ i, r->address, r->notify, r->orcpt };
		m->rcpts[i].state = QRCPT_INFLIGHT;
		if (j->nrcpts == limit) {
			qmgr_dest_push(q, d, j);
			for (size_t k = 0; k < nopen; k++) {
				if (open[k] == j)
					open[k] = open[--nopen];
			}
		}
	}
	for (size_t k = 0; k < nopen; k++)
		qmgr_dest_push(q, open[k]->dest, open[k]);
	free(open);
}

static bool qmgr_connection_failure(const struct delivery_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (res[i].status != DELIVERY_DEFER || res[i].code != 0)
			return false;
	}
	return true;
}

/* Slow start: every job that reached the peer widens the window by one, up to the limit; a
   job that could not talk to it at all halves it, and a second such failure in a row marks the
   destination dead for minimal_backoff_time, deferring what waits for it without trying. */
static void qmgr_dest_feedback(struct qmgr *q, struct qdest *d, const struct delivery_result *res,
			       size_t n)
{
	const struct config *conf = q->ctx->conf;
	if (!qmgr_connection_failure(res, n)) {
		d->failures = 0;
		if (d->window < (unsigned)conf->default_destination_concurrency_limit)
			d->window++;
		return;
	}
	d->window = d->window > 1 ? d->window / 2 : 1;
	snprintf(d->reason, sizeof(d->reason), "%s", res[0].text);
	if (++d->failures >= 2 && d->dead_until_us <= time_now_us()) {
		d->dead_until_us = time_now_us() + conf->minimal_backoff_time * 1000000;
		log_warn("destination %s is unreachable; deferring its mail for %llds", d->key,
			 (long long)conf->minimal_backoff_time);
	}
}

static void qmgr_record(struct qmsg *m, const struct delivery_result *r)
{
	if (r->index >= m->env.nrcpts)
		log_panic("%s: delivery result for recipient %zu of %zu", m->id, r->index, m->env.nrcpts);
	struct qrcpt *qr = &m->rcpts[r->index];
	qr->last = *r;
	qr->has_result = true;
	qr->last_us = time_now_us();
	if (r->status == DELIVERY_DEFER) {
		qr->state = QRCPT_DEFER;
	} else if (r->status == DELIVERY_BOUNCE) {
		qr->state = QRCPT_BOUNCE;
	} else {
		qr->state = QRCPT_FINAL;
		qr->notify_success = (m->env.rcpts[r->index].notify & SMTP_NOTIFY_SUCCESS) && !r->dsn_passed;
		/* results decided without an agent (rules, refusals) come before the file is open */
		if (qmgr_msg_open(m) < 0 || qfile_set_rcpt_state(m->fd, &m->env.rcpts[r->index], QFILE_RCPT_DONE) < 0)
			log_error("%s: cannot record delivery: %m", m->id);
	}
}

static void qmgr_job_free(struct qjob *j)
{
	free(j->rcpts);
	free(j);
}

static void qmgr_job_cb(void *arg, const struct delivery_result *res, size_t n)
{
	struct qjob *j = arg;
	struct qmgr *q = j->msg->q;
	struct qmsg *m = j->msg;
	for (size_t i = 0; i < n; i++)
		qmgr_record(m, &res[i]);
	m->running--;
	qmgr_dest_feedback(q, j->dest, res, n);
	j->dest->active--;
	q->inflight--;
	qmgr_dest_ready(q, j->dest);
	qmgr_job_free(j);
	qmgr_job_done(m);
	qmgr_sched_run(q);
}

/* A job that cannot start (a dead destination, no file descriptor) is deferred at once with
   the reason. */
static void qmgr_job_skip(struct qjob *j, const char *dsn, const char *why)
{
	struct delivery_result *res = xcalloc(j->nrcpts, sizeof(*res));
	for (size_t i = 0; i < j->nrcpts; i++)
		delivery_result_set(&res[i], j->rcpts[i].index, DELIVERY_DEFER, 0, dsn,
				    "delivery temporarily suspended: %.400s", why);
	struct qmsg *m = j->msg;
	for (size_t i = 0; i < j->nrcpts; i++)
		qmgr_record(m, &res[i]);
	free(res);
	qmgr_job_free(j);
	qmgr_job_done(m);
}

static void qmgr_job_start(struct qmgr *q, struct qjob *j)
{
	struct qmsg *m = j->msg;
	if (qmgr_msg_open(m) < 0) {
		qmgr_job_skip(j, "4.3.0", strerror(errno));
		return;
	}
	m->running++;
	j->req = (struct delivery_request){
		.id = m->id, .sender = m->env.sender, .envid = m->env.envid, .ret = m->env.ret,
		.smtputf8 = m->env.smtputf8,
		.eightbit = m->env.body != NULL && strcmp(m->env.body, "8BITMIME") == 0,
		.fd = m->fd, .content_off = m->content_off, .content_size = m->content_size,
		.rcpts = j->rcpts, .nrcpts = j->nrcpts,
	};
	j->dest->active++;
	q->inflight++;
	smtp_client_deliver(q->client, &j->hop, &j->req, qmgr_job_cb, j);
}

static struct qjob *qmgr_dest_take(struct qdest *d)
{
	struct qjob *j = d->head;
	d->head = j->next;
	if (d->head == NULL)
		d->tail = NULL;
	d->queued--;
	j->next = NULL;
	return j;
}

void qmgr_sched_run(struct qmgr *q)
{
	unsigned limit = (unsigned)q->ctx->conf->delivery_process_limit;
	unsigned turns = 0;
	while (q->ring != NULL && q->inflight < limit && !q->stopping && turns++ < 10000) {
		struct qdest *d = qmgr_ring_pop(q);
		if (d->head == NULL)
			continue;
		if (d->dead_until_us > time_now_us()) {
			qmgr_job_skip(qmgr_dest_take(d), "4.4.1", d->reason);
			qmgr_dest_ready(q, d);
			continue;
		}
		if (d->active >= d->window)
			continue; /* back in the ring when one of its jobs finishes */
		qmgr_job_start(q, qmgr_dest_take(d));
		qmgr_dest_ready(q, d);
	}
}

void qmgr_sched_free(struct qmgr *q)
{
	for (int h = 0; h < QMGR_HASH; h++) {
		while (q->dests[h] != NULL) {
			struct qdest *d = q->dests[h];
			q->dests[h] = d->hnext;
			while (d->head != NULL)
				qmgr_job_free(qmgr_dest_take(d));
			free(d);
		}
	}
	q->ring = q->ring_tail = NULL;
}
