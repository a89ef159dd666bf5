/* Reporting failures: an RFC 3464 report to the sender for the recipients that bounced, made
   durable in the queue before those recipients are marked bounced, so that a crash can repeat
   a report but never lose one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "msg/ndr.h"
#include "queue/commit.h"
#include "queue/qmgr_int.h"
#include "queue/spool.h"
#include "smtp/command.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

struct qmgr_report {
	struct qmsg *m;
	void (*done)(struct qmsg *m);
	unsigned pending;    /* reports not yet committed */
	bool failed;         /* a failure report could not be queued */
};

static bool qmgr_wants_failure_report(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_FAILURE);
}

static int64_t qmgr_expiry_us(const struct qmsg *m)
{
	const struct config *conf = m->q->ctx->conf;
	int64_t lifetime = m->env.sender[0] ? conf->maximal_queue_lifetime : conf->bounce_queue_lifetime;
	return m->env.arrival_us + lifetime * 1000000;
}

static bool qmgr_wants_delay_report(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_DELAY);
}

/* Marks every QRCPT_BOUNCE recipient bounced in the file (reported, or nothing to report). */
static void qmgr_mark_bounced(struct qmsg *m)
{
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];
		if (r->state != QRCPT_BOUNCE)
			continue;
		log_info("%s: to=<%s>, status=bounced (%s)", m->id, m->env.rcpts[i].address, r->last.text);
		if (qfile_set_rcpt_state(m->fd, &m->env.rcpts[i], QFILE_RCPT_BOUNCED) < 0)
			log_error("%s: cannot record the bounce: %s", m->id, strerror(errno));
		r->state = QRCPT_FINAL;
	}
}

static struct ndr_rcpt qmgr_report_rcpt(const struct qmsg *m, size_t i, const char *action)
{
	const struct qrcpt *r = &m->rcpts[i];
	const struct queue_rcpt *qr = &m->env.rcpts[i];
	return (struct ndr_rcpt){
		.address = qr->address, .orcpt = qr->orcpt, .action = action,
		.status = r->last.dsn, .code = r->last.code, .diagnostic = r->last.text,
		.remote_mta = r->last.remote_mta[0] ? r->last.remote_mta : NULL,
		.last_attempt_us = r->last_us,
	};
}

/* Failures the sender asked to hear of (NOTIFY absent or with FAILURE), or successes relayed to
   a next hop that could not carry NOTIFY=SUCCESS on (RFC 3461 5.2.2: "relayed"). */
static size_t qmgr_report_rcpts(struct qmsg *m, enum ndr_kind kind, struct ndr_rcpt *out)
{
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];
		if (kind == NDR_FAILURE && r->state == QRCPT_BOUNCE &&
		    qmgr_wants_failure_report(&m->env.rcpts[i]))
			out[n++] = qmgr_report_rcpt(m, i, "failed");
		if (kind == NDR_DELAY && r->state == QRCPT_DEFER && qmgr_wants_delay_report(&m->env.rcpts[i])) {
			out[n] = qmgr_report_rcpt(m, i, "delayed");
			out[n++].will_retry_until_us = qmgr_expiry_us(m);
		}
		if (kind == NDR_SUCCESS && r->notify_success) {
			out[n++] = qmgr_report_rcpt(m, i, "relayed");
			r->notify_success = false;
		}
	}
	return n;
}

static int qmgr_report_write(void *arg, const void *data, size_t n)
{
	return qfile_write(arg, data, n);
}

static void qmgr_report_finish(struct qmgr_report *rep)
{
	struct qmsg *m = rep->m;
	if (!rep->failed) {
		qmgr_mark_bounced(m);
	} else {
		/* Not reported yet: keep them deferred, the next pass reports them. */
		for (size_t i = 0; i < m->env.nrcpts; i++) {
			if (m->rcpts[i].state == QRCPT_BOUNCE)
				m->rcpts[i].state = QRCPT_DEFER;
		}
	}
	rep->done(m);
	free(rep);
}

struct qmgr_report_file {
	struct qmgr_report *rep;
	enum ndr_kind kind;
	char id[QUEUE_ID_LEN + 1];
};

static void qmgr_report_committed(void *arg, int result)
{
	struct qmgr_report_file *f = arg;
	struct qmgr_report *rep = f->rep;
	if (result == 0) {
		log_info("%s: sender %s notification: %s", rep->m->id,
			 f->kind == NDR_FAILURE ? "non-delivery" : "delivery", f->id);
		qmgr_enqueue(rep->m->q, f->id);
	} else {
		log_error("%s: cannot queue a notification: %s", rep->m->id, strerror(result));
		rep->failed |= f->kind == NDR_FAILURE;
	}
	free(f);
	if (--rep->pending == 0)
		qmgr_report_finish(rep);
}

static struct qfile *qmgr_report_file(struct qmsg *m, char *id)
{
	struct queue_envelope env = { 0 };
	queue_id_new(env.id);
	memcpy(id, env.id, QUEUE_ID_LEN + 1);
	env.arrival_us = time_now_us();
	queue_envelope_set(&env.origin, "bounce");
	queue_envelope_set(&env.proto, "local");
	queue_envelope_set(&env.sender, "");
	queue_envelope_add_rcpt(&env, m->env.sender, 0, NULL);
	env.smtputf8 = m->env.smtputf8;
	/* The report may carry the original whole: it is 8-bit when the original is. */
	queue_envelope_set(&env.body, m->env.body);
	struct qfile *qf = NULL;
	if (qfile_create(m->q->ctx->spool, &env, &qf) < 0)
		log_error("%s: cannot create the report file: %s", m->id, strerror(errno));
	queue_envelope_clear(&env);
	return qf;
}

static int qmgr_report_compose(struct qmsg *m, struct qfile *qf, enum ndr_kind kind, const char *ndr_id,
			       const struct ndr_rcpt *rcpts, size_t n)
{
	char msgid[128];
	snprintf(msgid, sizeof(msgid), "%s.report@%s", ndr_id, m->q->ctx->hostname);
	struct ndr_params p = {
		.kind = kind, .reporting_mta = m->q->ctx->hostname, .queue_id = m->id,
		.envid = m->env.envid, .arrival_us = m->env.arrival_us, .to = m->env.sender,
		.ret = m->env.ret, .now_us = time_now_us(), .message_id = msgid,
	};
	if (ndr_compose(&p, rcpts, n, m->fd, m->content_off, m->content_size, qmgr_report_write, qf) < 0 ||
	    qfile_finish(qf) < 0)
		return -1;
	return 0;
}

/* Queues one report of kind for the message's recipients that call for it. */
static void qmgr_report(struct qmgr_report *rep, enum ndr_kind kind)
{
	struct qmsg *m = rep->m;
	struct ndr_rcpt *rcpts = xcalloc(m->env.nrcpts, sizeof(*rcpts));
	size_t n = qmgr_report_rcpts(m, kind, rcpts);
	if (n > 0) {
		struct qmgr_report_file *f = xcalloc(1, sizeof(*f));
		f->rep = rep;
		f->kind = kind;
		rep->pending++;
		struct qfile *qf = qmgr_report_file(m, f->id);
		if (qf == NULL || qmgr_report_compose(m, qf, kind, f->id, rcpts, n) < 0) {
			qfile_abort(&qf);
			qmgr_report_committed(f, EIO);
		} else {
			committer_submit(m->q->ctx->committer, qf, SPOOL_INCOMING, qmgr_report_committed, f);
		}
	}
	free(rcpts);
}

/* One warning per message, once it has waited delay_warning_time (RFC 3461 "delayed"). */
static bool qmgr_delay_due(const struct qmsg *m)
{
	int64_t warn = m->q->ctx->conf->delay_warning_time;
	return warn > 0 && !m->warned && time_now_us() - m->env.arrival_us >= warn * 1000000;
}

void qmgr_bounce(struct qmsg *m, void (*done)(struct qmsg *m))
{
	struct qmgr_report *rep = xcalloc(1, sizeof(*rep));
	rep->m = m;
	rep->done = done;
	/* Never a report to the null sender: that is how report loops are avoided. */
	if (m->env.sender[0] != '\0') {
		rep->pending = 1; /* held until both kinds are queued */
		qmgr_report(rep, NDR_FAILURE);
		qmgr_report(rep, NDR_SUCCESS);
		if (qmgr_delay_due(m)) {
			m->warned = true;
			qmgr_report(rep, NDR_DELAY);
		}
		if (--rep->pending > 0)
			return;
	}
	qmgr_report_finish(rep);
}
