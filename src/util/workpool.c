#include "util/workpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/xalloc.h"

struct workpool_job {
	workpool_job_fn *fn;
	workpool_done_fn *done;
	void *arg;
	int result;
	struct workpool_job *next;
};

/* A FIFO list of jobs. */
struct workpool_jobs {
	struct workpool_job *head, *tail;
};

struct workpool_worker {
	struct workpool *p;
	void *state;
	pthread_t thread;
};

struct workpool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workpool_jobs queued;   /* waiting for a worker */
	struct workpool_jobs finished; /* waiting for the loop */
	unsigned nqueued, queue_max;
	atomic_bool stopping;
	unsigned outstanding; /* touched on the loop thread only */
	struct event *done_ev;
	struct workpool_worker workers[WORKPOOL_THREADS_MAX];
	unsigned nworkers;
};

static void workpool_jobs_push(struct workpool_jobs *l, struct workpool_job *job)
{
	job->next = NULL;
	if (l->tail != NULL)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct workpool_job *workpool_jobs_take_all(struct workpool_jobs *l)
{
	struct workpool_job *head = l->head;
	l->head = l->tail = NULL;
	return head;
}

static struct workpool_job *workpool_jobs_pop(struct workpool_jobs *l)
{
	struct workpool_job *job = l->head;
	l->head = job->next;
	if (l->head == NULL)
		l->tail = NULL;
	return job;
}

static void *workpool_worker_main(void *arg)
{
	struct workpool_worker *w = arg;
	struct workpool *p = w->p;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->queued.head == NULL && !atomic_load(&p->stopping))
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->queued.head == NULL)
			break;
		struct workpool_job *job = workpool_jobs_pop(&p->queued);
		p->nqueued--;
		pthread_mutex_unlock(&p->lock);
		job->result = job->fn(w->state, job->arg);
		pthread_mutex_lock(&p->lock);
		workpool_jobs_push(&p->finished, job);
		event_active(p->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Hands each job, in list order, to its done callback on the loop thread. */
static void workpool_deliver(struct workpool *p, struct workpool_job *list)
{
	while (list != NULL) {
		struct workpool_job *job = list;
		list = job->next;
		p->outstanding--;
		job->done(job->arg, job->result);
		free(job);
	}
}

static void workpool_report(evutil_socket_t fd, short what, void *arg)
{
	struct workpool *p = arg;
	pthread_mutex_lock(&p->lock);
	struct workpool_job *list = workpool_jobs_take_all(&p->finished);
	pthread_mutex_unlock(&p->lock);
	workpool_deliver(p, list);
}

struct workpool *workpool_new(struct event_base *base, unsigned nthreads, unsigned queue_max,
			      void *const *workers)
{
	struct workpool *p = xcalloc(1, sizeof(*p));
	p->nworkers = nthreads < 1 ? 1 : nthreads > WORKPOOL_THREADS_MAX ? WORKPOOL_THREADS_MAX : nthreads;
	p->queue_max = queue_max;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	atomic_init(&p->stopping, false);
	p->done_ev = event_new(base, -1, 0, workpool_report, p);
	for (unsigned i = 0; i < p->nworkers; i++) {
		p->workers[i] = (struct workpool_worker){ .p = p, .state = workers != NULL ? workers[i] : NULL };
		if (pthread_create(&p->workers[i].thread, NULL, workpool_worker_main, &p->workers[i]) != 0)
			log_fatal("cannot start a worker thread");
	}
	return p;
}

int workpool_submit(struct workpool *p, workpool_job_fn *fn, void *arg, workpool_done_fn *done)
{
	pthread_mutex_lock(&p->lock);
	if (atomic_load(&p->stopping) || p->nqueued >= p->queue_max) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	struct workpool_job *job = xcalloc(1, sizeof(*job));
	*job = (struct workpool_job){ .fn = fn, .done = done, .arg = arg };
	workpool_jobs_push(&p->queued, job);
	p->nqueued++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	p->outstanding++;
	return 0;
}

unsigned workpool_pending(const struct workpool *p)
{
	return p->outstanding;
}

bool workpool_stopping(const struct workpool *p)
{
	return atomic_load(&((struct workpool *)p)->stopping);
}

/* Cancelled callbacks run before the workers are joined: one may be what a running job is
   waiting for, and they need nothing from the workers. */
void workpool_free(struct workpool **pp, int cancelled)
{
	struct workpool *p = *pp;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->stopping, true);
	struct workpool_job *list = workpool_jobs_take_all(&p->queued);
	p->nqueued = 0;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (struct workpool_job *job = list; job != NULL; job = job->next)
		job->result = cancelled;
	workpool_deliver(p, list);
	for (unsigned i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i].thread, NULL);
	workpool_report(-1, 0, p);
	event_free(p->done_ev);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	xfree(pp);
}
