#include "deliver/maildir_agent.h"

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/workpool.h"
#include "util/xalloc.h"

/* The worker pool of the maildir: agent (DESIGN.md 2): fsync and link block, so deliveries
   run on a few threads and their results come back to the loop through one event. */

struct maildir_job {
	struct maildir_agent *a;
	char *maildir;
	struct delivery_request req; /* a deep copy but for fd */
	struct delivery_rcpt *rcpts;
	struct delivery_result *results;
	size_t ndone;                /* results[0..ndone) are filled by the worker */
	const char *why_not;         /* the reason for deferring the others */
	delivery_done_cb *cb;
	void *arg;
	struct maildir_job *next; /* on the agent's refused list */
};

struct maildir_agent {
	struct workpool *pool;
	char *hostname;
	struct maildir_job *refused; /* answered on the next turn of the loop (or at free) */
	struct event *refused_ev;
};

static char *maildir_strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* The caller's arrays and strings need not outlive maildir_agent_deliver(). */
static struct maildir_job *maildir_job_new(const char *maildir, const struct delivery_request *req)
{
	struct maildir_job *job = xcalloc(1, sizeof(*job));
	job->maildir = xstrdup(maildir);
	job->req = *req;
	job->req.id = xstrdup(req->id != NULL ? req->id : "-");
	job->req.sender = xstrdup(req->sender != NULL ? req->sender : "");
	job->req.envid = maildir_strdup_or_null(req->envid);
	job->req.ret = maildir_strdup_or_null(req->ret);
	job->rcpts = xcalloc(req->nrcpts + 1, sizeof(*job->rcpts));
	for (size_t i = 0; i < req->nrcpts; i++) {
		job->rcpts[i] = req->rcpts[i];
		job->rcpts[i].address = xstrdup(req->rcpts[i].address);
		job->rcpts[i].orcpt = maildir_strdup_or_null(req->rcpts[i].orcpt);
	}
	job->req.rcpts = job->rcpts;
	job->results = xcalloc(req->nrcpts + 1, sizeof(*job->results));
	return job;
}

static void maildir_job_free(struct maildir_job **jobp)
{
	struct maildir_job *job = *jobp;
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->req.nrcpts; i++) {
		free((char *)job->rcpts[i].address);
		free((char *)job->rcpts[i].orcpt);
	}
	free((char *)job->req.id);
	free((char *)job->req.sender);
	free((char *)job->req.envid);
	free((char *)job->req.ret);
	free(job->rcpts);
	free(job->results);
	free(job->maildir);
	xfree(jobp);
}

/* On a worker. Stops between recipients once shutdown begins: each finished one stays
   delivered. */
static int maildir_job_run(void *worker, void *arg)
{
	struct maildir_job *job = arg;
	for (; job->ndone < job->req.nrcpts; job->ndone++) {
		if (workpool_stopping(job->a->pool)) {
			job->why_not = "maildir agent stopped";
			break;
		}
		maildir_deliver_one(job->maildir, &job->req, &job->rcpts[job->ndone], job->a->hostname,
				    &job->results[job->ndone]);
	}
	return 0;
}

/* On the loop: the recipients not reached are deferred with the reason. */
static void maildir_job_done(void *arg, int result)
{
	struct maildir_job *job = arg;
	if (result != 0 && job->why_not == NULL)
		job->why_not = "maildir agent stopped";
	for (size_t i = job->ndone; i < job->req.nrcpts; i++)
		delivery_result_set(&job->results[i], job->rcpts[i].index, DELIVERY_DEFER, 0, "4.3.0", "%s",
				    job->why_not);
	job->cb(job->arg, job->results, job->req.nrcpts);
	maildir_job_free(&job);
}

static void maildir_agent_answer_refused(evutil_socket_t fd, short what, void *arg)
{
	struct maildir_agent *a = arg;
	while (a->refused != NULL) {
		struct maildir_job *job = a->refused;
		a->refused = job->next;
		maildir_job_done(job, 0);
	}
}

struct maildir_agent *maildir_agent_new(struct event_base *base, const char *hostname,
					unsigned threads)
{
	struct maildir_agent *a = xcalloc(1, sizeof(*a));
	a->refused_ev = event_new(base, -1, 0, maildir_agent_answer_refused, a);
	a->pool = workpool_new(base, threads < 1 ? 1 : threads > MAILDIR_AGENT_THREADS_MAX ? MAILDIR_AGENT_THREADS_MAX : threads,
			       MAILDIR_AGENT_QUEUE_MAX, NULL);
	a->hostname = maildir_strdup_or_null(hostname);
	return a;
}

/* A full queue answers on the next turn of the loop, so cb never runs inside this call. */
void maildir_agent_deliver(struct maildir_agent *a, const char *maildir,
			   const struct delivery_request *req, delivery_done_cb *cb, void *arg)
{
	struct maildir_job *job = maildir_job_new(maildir, req);
	job->a = a;
	job->cb = cb;
	job->arg = arg;
	if (workpool_submit(a->pool, maildir_job_run, job, maildir_job_done) == 0)
		return;
	job->why_not = workpool_stopping(a->pool) ? "maildir agent stopped" : "maildir agent busy";
	job->next = a->refused;
	a->refused = job;
	event_active(a->refused_ev, EV_TIMEOUT, 0);
}

unsigned maildir_agent_pending(const struct maildir_agent *a)
{
	unsigned n = workpool_pending(a->pool);
	for (const struct maildir_job *job = a->refused; job != NULL; job = job->next)
		n++;
	return n;
}

void maildir_agent_free(struct maildir_agent **ap)
{
	struct maildir_agent *a = *ap;
	if (a == NULL)
		return;
	workpool_free(&a->pool, -1);
	maildir_agent_answer_refused(-1, 0, a);
	event_free(a->refused_ev);
	free(a->hostname);
	xfree(ap);
}
