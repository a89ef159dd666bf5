#include "deliver/maildir_agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/xalloc.h"

/* The worker pool of the maildir: agent (DESIGN.md 2): fsync and link block, so deliveries
   run on a few threads and their results come back to the loop through one event. */

struct maildir_job {
	char *maildir;
	struct delivery_request req; /* a deep copy but for fd */
	struct delivery_rcpt *rcpts;
	struct delivery_result *results;
	size_t ndone;                /* results[0..ndone) are filled by the worker */
	const char *why_not;         /* the reason for deferring the others */
	delivery_done_cb *cb;
	void *arg;
	struct maildir_job *next;
};

/* A FIFO list of jobs. */
struct maildir_jobs {
	struct maildir_job *head, *tail;
};

struct maildir_agent {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct maildir_jobs queued;   /* waiting for a worker */
	struct maildir_jobs finished; /* waiting for the loop */
	unsigned nqueued;
	atomic_bool stopping;         /* read by workers between recipients */
	unsigned outstanding;         /* touched on the loop thread only */
	struct event *done_ev;
	char *hostname;
	pthread_t threads[MAILDIR_AGENT_THREADS_MAX];
	unsigned nthreads;
};

static void maildir_jobs_push(struct maildir_jobs *l, struct maildir_job *job)
{
	job->next = NULL;
	if (l->tail != NULL)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct maildir_job *maildir_jobs_take_all(struct maildir_jobs *l)
{
	struct maildir_job *head = l->head;
	l->head = l->tail = NULL;
	return head;
}

static struct maildir_job *maildir_jobs_pop(struct maildir_jobs *l)
{
	struct maildir_job *job = l->head;
	l->head = job->next;
	if (l->head == NULL)
		l->tail = NULL;
	return job;
}

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

/* Stops between recipients once shutdown begins: each finished one stays delivered. */
static void maildir_job_run(struct maildir_agent *a, struct maildir_job *job)
{
	for (; job->ndone < job->req.nrcpts; job->ndone++) {
		if (atomic_load(&a->stopping)) {
			job->why_not = "maildir agent stopped";
			return;
		}
		maildir_deliver_one(job->maildir, &job->req, &job->rcpts[job->ndone], a->hostname,
				    &job->results[job->ndone]);
	}
}

static void *maildir_worker_main(void *arg)
{
	struct maildir_agent *a = arg;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (a->queued.head == NULL && !atomic_load(&a->stopping))
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->queued.head == NULL)
			break;
		struct maildir_job *job = maildir_jobs_pop(&a->queued);
		a->nqueued--;
		pthread_mutex_unlock(&a->lock);
		maildir_job_run(a, job);
		pthread_mutex_lock(&a->lock);
		maildir_jobs_push(&a->finished, job);
		event_active(a->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Hands each job, in list order, to its callback on the loop thread. */
static void maildir_agent_report_list(struct maildir_agent *a, struct maildir_job *list)
{
	while (list != NULL) {
		struct maildir_job *job = list;
		list = job->next;
		for (size_t i = job->ndone; i < job->req.nrcpts; i++)
			delivery_result_set(&job->results[i], job->rcpts[i].index, DELIVERY_DEFER, 0,
					    "4.3.0", "%s", job->why_not);
		a->outstanding--;
		job->cb(job->arg, job->results, job->req.nrcpts);
		maildir_job_free(&job);
	}
}

static void maildir_agent_report(evutil_socket_t fd, short what, void *arg)
{
	struct maildir_agent *a = arg;
	pthread_mutex_lock(&a->lock);
	struct maildir_job *list = maildir_jobs_take_all(&a->finished);
	pthread_mutex_unlock(&a->lock);
	maildir_agent_report_list(a, list);
}

struct maildir_agent *maildir_agent_new(struct event_base *base, const char *hostname,
					unsigned threads)
{
	struct maildir_agent *a = xcalloc(1, sizeof(*a));
	a->nthreads = threads < 1 ? 1 : threads > MAILDIR_AGENT_THREADS_MAX
						? MAILDIR_AGENT_THREADS_MAX : threads;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	atomic_init(&a->stopping, false);
	a->done_ev = event_new(base, -1, 0, maildir_agent_report, a);
	a->hostname = maildir_strdup_or_null(hostname);
	for (unsigned i = 0; i < a->nthreads; i++) {
		if (pthread_create(&a->threads[i], NULL, maildir_worker_main, a) != 0)
			log_fatal("cannot start a maildir worker thread");
	}
	return a;
}

/* A full queue answers through the same event as a finished job, so cb never runs inside
   this call. */
void maildir_agent_deliver(struct maildir_agent *a, const char *maildir,
			   const struct delivery_request *req, delivery_done_cb *cb, void *arg)
{
	struct maildir_job *job = maildir_job_new(maildir, req);
	job->cb = cb;
	job->arg = arg;
	a->outstanding++;
	pthread_mutex_lock(&a->lock);
	if (a->nqueued >= MAILDIR_AGENT_QUEUE_MAX || atomic_load(&a->stopping)) {
		job->why_not = "maildir agent busy";
		maildir_jobs_push(&a->finished, job);
		event_active(a->done_ev, EV_READ, 0);
	} else {
		maildir_jobs_push(&a->queued, job);
		a->nqueued++;
		pthread_cond_signal(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
}

unsigned maildir_agent_pending(const struct maildir_agent *a)
{
	return a->outstanding;
}

void maildir_agent_free(struct maildir_agent **ap)
{
	struct maildir_agent *a = *ap;
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	atomic_store(&a->stopping, true);
	struct maildir_job *cancelled = maildir_jobs_take_all(&a->queued);
	a->nqueued = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (struct maildir_job *job = cancelled; job != NULL; job = job->next)
		job->why_not = "maildir agent stopped";
	maildir_agent_report_list(a, cancelled);
	for (unsigned i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	maildir_agent_report(-1, 0, a);
	event_free(a->done_ev);
	free(a->hostname);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	xfree(ap);
}
