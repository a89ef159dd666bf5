/* The SMTP/LMTP client agent: the public API, deliveries in progress ("jobs"), their results
   and log lines. Next hop resolution is in smtp_client_hop.c, the dialogue in
   smtp_client_session.c, sockets and the connection cache in smtp_client_conn.c. */
#include "deliver/smtp_client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

static void client_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	struct smtp_client_conn *next;
	for (struct smtp_client_conn *conn = c->conns; conn != NULL; conn = next) {
		next = conn->next;
		if (conn->state == SMTP_CLIENT_DEAD)
			smtp_client_conn_destroy(conn);
	}
}

/* Zero means "not set" for a timeout: Postfix's defaults then. */
static void client_default(int *v, int def)
{
	if (*v <= 0)
		*v = def;
}

struct smtp_client *smtp_client_new(struct event_base *base, struct dns *dns,
				    const struct smtp_client_options *opts)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->dns = dns;
	smtp_client_set_options(c, opts);
	c->reaper = event_new(base, -1, 0, client_reap_cb, c);
	return c;
}

void smtp_client_set_options(struct smtp_client *c, const struct smtp_client_options *opts)
{
	free(c->helo_name);
	c->opts = *opts;
	c->helo_name = xstrdup(opts->helo_name != NULL ? opts->helo_name : "localhost");
	c->opts.helo_name = c->helo_name;
	client_default(&c->opts.connect_timeout, 30);
	client_default(&c->opts.helo_timeout, 300);
	client_default(&c->opts.command_timeout, 300);
	client_default(&c->opts.data_timeout, 180);
	client_default(&c->opts.data_done_timeout, 600);
}

static void client_job_unlink(struct smtp_client_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		job->client->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	job->prev = job->next = NULL;
}

static const char *client_status_name(enum delivery_status s)
{
	return s == DELIVERY_DONE ? "sent" : s == DELIVERY_DEFER ? "deferred" : "bounced";
}

/* One line per recipient, as Postfix writes them. */
static void client_job_log(const struct smtp_client_job *job)
{
	const char *relay = job->relay[0] != '\0' ? job->relay : "none";
	double delay = (double)(time_now_us() - job->start_us) / 1e6;
	for (size_t i = 0; i < job->req->nrcpts; i++) {
		const struct delivery_result *r = &job->results[i];
		const char *to = job->req->rcpts[i].address;
		const char *st = client_status_name(r->status);
		if (r->status != DELIVERY_DONE && r->code != 0 && job->in_reply_to[i] != NULL)
			log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (host %s said: %s (in reply to %s command))",
				 job->req->id, to, relay, delay, r->dsn, st, relay, r->text, job->in_reply_to[i]);
		else
			log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)", job->req->id, to,
				 relay, delay, r->dsn, st, r->text);
	}
}

/* Runs the callback and frees the job. A recipient left open would be a bug here; it is
   deferred rather than lost. */
static void client_job_done(struct smtp_client_job *job)
{
	for (size_t i = 0; i < job->req->nrcpts; i++) {
		if (job->rstate[i] != SMTP_CLIENT_RCPT_FINAL) {
			log_error("%s: no result for <%s>", job->req->id, job->req->rcpts[i].address);
			delivery_result_set(&job->results[i], job->req->rcpts[i].index, DELIVERY_DEFER, 0,
					    "4.3.0", "delivery agent error");
		}
	}
	client_job_unlink(job);
	client_job_log(job);
	job->cb(job->arg, job->results, job->req->nrcpts);
	event_free(job->ev);
	free(job->results);
	free(job->rstate);
	free(job->in_reply_to);
	free(job->hosts);
	free(job->addrs);
	free(job);
}

static void client_job_start(struct smtp_client_job *job)
{
	struct smtp_client *c = job->client;
	if (job->req->nrcpts == 0) {
		smtp_client_job_finish(job);
		return;
	}
	if (job->hop.tls == SMTP_TLS_ENCRYPT && c->opts.tls == NULL) {
		smtp_client_job_fail(job, DELIVERY_DEFER, "4.7.4",
				     "TLS is required, but no TLS client context is configured");
		return;
	}
	struct smtp_client_conn *conn = smtp_client_conn_take(c, &job->hop);
	if (conn == NULL) {
		smtp_client_hop_start(job);
		return;
	}
	conn->job = job;
	job->conn = conn;
	snprintf(job->relay, sizeof(job->relay), "%s", conn->relay);
	/* A connection still resetting starts the transaction when its RSET is answered. */
	if (conn->state == SMTP_CLIENT_IDLE)
		smtp_client_session_tx_start(conn);
}

static void client_job_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client_job *job = arg;
	if (job->finished)
		client_job_done(job);
	else
		client_job_start(job);
}

static struct smtp_client_job *client_job_new(struct smtp_client *c, const struct smtp_nexthop *hop,
					      const struct delivery_request *req, delivery_done_cb *cb,
					      void *arg)
{
	struct smtp_client_job *job = xcalloc(1, sizeof(*job));
	size_t n = req->nrcpts > 0 ? req->nrcpts : 1;
	job->client = c;
	job->hop = *hop;
	job->req = req;
	job->cb = cb;
	job->arg = arg;
	job->start_us = time_now_us();
	job->results = xcalloc(n, sizeof(*job->results));
	job->rstate = xcalloc(n, sizeof(*job->rstate));
	job->in_reply_to = xcalloc(n, sizeof(*job->in_reply_to));
	job->ev = event_new(c->base, -1, 0, client_job_event_cb, job);
	job->next = c->jobs;
	if (c->jobs != NULL)
		c->jobs->prev = job;
	c->jobs = job;
	return job;
}

/* Even a request that fails at once is answered from the loop, never from inside this call,
   so that callers need not be reentrant. */
void smtp_client_deliver(struct smtp_client *c, const struct smtp_nexthop *hop,
			 const struct delivery_request *req, delivery_done_cb *cb, void *arg)
{
	struct smtp_client_job *job = client_job_new(c, hop, req, cb, arg);
	if (c->freeing) {
		/* Only a callback run by smtp_client_free gets here; there is no loop turn left. */
		smtp_client_job_fail(job, DELIVERY_DEFER, "4.4.2", "delivery interrupted");
		client_job_done(job);
		return;
	}
	event_active(job->ev, EV_TIMEOUT, 1);
}

/* The status decides the class of the DSN code, whatever the text said. */
void smtp_client_job_set(struct smtp_client_job *job, size_t i, enum delivery_status status,
			 const struct smtp_client_error *e)
{
	struct delivery_result *r = &job->results[i];
	delivery_result_set(r, job->req->rcpts[i].index, status, e->code, e->dsn, "%s", e->text);
	r->dsn[0] = status == DELIVERY_DONE ? '2' : status == DELIVERY_DEFER ? '4' : '5';
	snprintf(r->remote_mta, sizeof(r->remote_mta), "%s", e->remote_mta);
	r->dsn_passed = e->dsn_passed;
	job->rstate[i] = SMTP_CLIENT_RCPT_FINAL;
	job->in_reply_to[i] = e->in_reply_to;
}

void smtp_client_job_set_open(struct smtp_client_job *job, bool accepted_only,
			      enum delivery_status status, const struct smtp_client_error *e)
{
	for (size_t i = 0; i < job->req->nrcpts; i++) {
		if (job->rstate[i] == SMTP_CLIENT_RCPT_FINAL ||
		    (accepted_only && job->rstate[i] != SMTP_CLIENT_RCPT_ACCEPTED))
			continue;
		smtp_client_job_set(job, i, status, e);
	}
}

void smtp_client_job_finish(struct smtp_client_job *job)
{
	if (job->finished)
		return;
	job->finished = true;
	if (job->conn != NULL) {
		job->conn->job = NULL;
		job->conn = NULL;
	}
	if (job->lookup != NULL) {
		job->lookup->job = NULL;
		job->lookup = NULL;
	}
	event_active(job->ev, EV_TIMEOUT, 1);
}

void smtp_client_job_fail(struct smtp_client_job *job, enum delivery_status status, const char *dsn,
			  const char *fmt, ...)
{
	struct smtp_client_error e = { .code = 0 };
	va_list ap;
	snprintf(e.dsn, sizeof(e.dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof(e.text), fmt, ap);
	va_end(ap);
	smtp_client_job_set_open(job, false, status, &e);
	smtp_client_job_finish(job);
}

void smtp_client_stop_waiting(struct smtp_client *c)
{
	for (struct smtp_client_job *job = c->jobs; job != NULL; job = job->next) {
		if (!job->finished && job->conn == NULL)
			smtp_client_job_fail(job, DELIVERY_DEFER, "4.4.2", "delivery interrupted by shutdown");
	}
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (c == NULL)
		return;
	c->freeing = true;
	while (c->jobs != NULL) {
		struct smtp_client_job *job = c->jobs;
		if (!job->finished)
			smtp_client_job_fail(job, DELIVERY_DEFER, "4.4.2", "delivery interrupted");
		client_job_done(job);
	}
	while (c->conns != NULL)
		smtp_client_conn_destroy(c->conns);
	event_free(c->reaper);
	free(c->helo_name);
	free(c);
	*cp = NULL;
}
