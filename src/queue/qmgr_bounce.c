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
	char ndr_id[QUEUE_ID_LEN + 1];
};

static bool qmgr_wants_failure_report(const struct queue_rcpt *r)
{
	return r->notify == 0 || (r->notify & SMTP_NOTIFY_FAILURE);
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

static size_t qmgr_report_rcpts(struct qmsg *m, struct ndr_rcpt *out)
{
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		const struct qrcpt *r = &m->rcpts[i];
		const struct queue_rcpt *qr = &m->env.rcpts[i];
		if (r->state != QRCPT_BOUNCE || !qmgr_wants_failure_report(qr))
			continue;
		out[n++] = (struct ndr_rcpt){
			.address = qr->address, .orcpt = qr->orcpt, .action = "failed",
			.status = r->last.dsn, .code = r->last.code, .diagnostic = r->last.text,
			.remote_mta = r->last.remote_mta[0] ? r->last.remote_mta : NULL,
			.last_attempt_us = r->last_us,
		};
	}
	return n;
}

static int qmgr_report_write(void *arg, const void *data, size_t n)
{
	return qfile_write(arg, data, n);
}

static void qmgr_report_committed(void *arg, int result)
{
	struct qmgr_report *rep = arg;
	struct qmsg *m = rep->m;
	if (result == 0) {
		log_info("%s: sender non-delivery notification: %s", m->id, rep->ndr_id);
		qmgr_enqueue(m->q, rep->ndr_id);
		qmgr_mark_bounced(m);
	} else {
		/* Not reported yet: keep them deferred, the next pass reports them. */
		log_error("%s: cannot queue the non-delivery notification: %s", m->id, strerror(result));
		for (size_t i = 0; i < m->env.nrcpts; i++) {
			if (m->rcpts[i].state == QRCPT_BOUNCE)
				m->rcpts[i].state = QRCPT_DEFER;
		}
	}
	rep->done(m);
	free(rep);
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

static int qmgr_report_compose(struct qmsg *m, struct qfile *qf, const char *ndr_id,
			       const struct ndr_rcpt *rcpts, size_t n)
{
	char msgid[128];
	snprintf(msgid, sizeof(msgid), "%s.bounce@%s", ndr_id, m->q->ctx->hostname);
	struct ndr_params p = {
		.kind = NDR_FAILURE, .reporting_mta = m->q->ctx->hostname, .queue_id = m->id,
		.envid = m->env.envid, .arrival_us = m->env.arrival_us, .to = m->env.sender,
		.ret = m->env.ret, .now_us = time_now_us(), .message_id = msgid,
	};
	if (ndr_compose(&p, rcpts, n, m->fd, m->content_off, m->content_size, qmgr_report_write, qf) < 0 ||
	    qfile_finish(qf) < 0)
		return -1;
	return 0;
}

void qmgr_bounce(struct qmsg *m, void (*done)(struct qmsg *m))
{
	struct ndr_rcpt *rcpts = xcalloc(m->env.nrcpts, sizeof(*rcpts));
	size_t n = m->env.sender[0] != '\0' ? qmgr_report_rcpts(m, rcpts) : 0;
	if (n == 0) {
		/* Never a report to the null sender, nor for NOTIFY=NEVER or DELAY/SUCCESS only. */
		free(rcpts);
		qmgr_mark_bounced(m);
		done(m);
		return;
	}
	struct qmgr_report *rep = xcalloc(1, sizeof(*rep));
	rep->m = m;
	rep->done = done;
	struct qfile *qf = qmgr_report_file(m, rep->ndr_id);
	if (qf == NULL || qmgr_report_compose(m, qf, rep->ndr_id, rcpts, n) < 0) {
		qfile_abort(&qf);
		free(rcpts);
		qmgr_report_committed(rep, EIO);
		return;
	}
	free(rcpts);
	committer_submit(m->q->ctx->committer, qf, SPOOL_INCOMING, qmgr_report_committed, rep);
}
