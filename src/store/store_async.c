#include "store/store_async.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "util/log.h"
#include "util/xalloc.h"

struct store_job {
	store_job_fn *fn;
	store_done_fn *done;
	void *arg;
	int result;
	struct store_job *next;
};

/* A FIFO list of jobs. */
struct store_jobs {
	struct store_job *head, *tail;
};

struct store_worker {
	struct store_async *a;
	struct store *store; /* this thread's own connection; NULL until one opens */
	int64_t tried_ms;    /* when opening it last failed */
	pthread_t thread;
	bool started;
};

struct store_async {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_jobs queued;   /* waiting for a worker */
	struct store_jobs finished; /* waiting for the loop */
	unsigned nqueued, queue_max;
	bool stopping;
	unsigned outstanding; /* touched on the loop thread only */
	struct event *done_ev;
	char *spec, *state_dir;
	struct store_worker workers[STORE_ASYNC_WORKERS_MAX];
	unsigned nworkers;
};

static void store_jobs_push(struct store_jobs *l, struct store_job *job)
{
	job->next = NULL;
	if (l->tail != NULL)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct store_job *store_jobs_take_all(struct store_jobs *l)
{
	struct store_job *head = l->head;
	l->head = l->tail = NULL;
	return head;
}

static struct store_job *store_jobs_pop(struct store_jobs *l)
{
	struct store_job *job = l->head;
	l->head = job->next;
	if (l->head == NULL)
		l->tail = NULL;
	return job;
}

#define STORE_ASYNC_RETRY_MS 1000

static int64_t store_async_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A worker without a connection (the database was unreachable) opens one itself, at most once
   a second; meanwhile its jobs fail as unavailable without waiting. */
static int store_worker_run(struct store_worker *w, struct store_job *job)
{
	if (w->store == NULL && store_async_now_ms() - w->tried_ms >= STORE_ASYNC_RETRY_MS) {
		const char *error;
		if (store_open(w->a->spec, w->a->state_dir, &w->store, &error) < 0) {
			w->tried_ms = store_async_now_ms();
			log_warn("store: cannot open %s: %s", w->a->spec, error);
		}
	}
	return w->store != NULL ? job->fn(w->store, job->arg) : STORE_UNAVAILABLE;
}

static void *store_worker_main(void *arg)
{
	struct store_worker *w = arg;
	struct store_async *a = w->a;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (a->queued.head == NULL && !a->stopping)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->queued.head == NULL)
			break;
		struct store_job *job = store_jobs_pop(&a->queued);
		a->nqueued--;
		pthread_mutex_unlock(&a->lock);
		job->result = store_worker_run(w, job);
		pthread_mutex_lock(&a->lock);
		store_jobs_push(&a->finished, job);
		event_active(a->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Hands each job, in list order, to its done callback on the loop thread. */
static void store_async_deliver(struct store_async *a, struct store_job *list)
{
	while (list != NULL) {
		struct store_job *job = list;
		list = job->next;
		a->outstanding--;
		job->done(job->arg, job->result);
		free(job);
	}
}

static void store_async_report(evutil_socket_t fd, short what, void *arg)
{
	struct store_async *a = arg;
	pthread_mutex_lock(&a->lock);
	struct store_job *list = store_jobs_take_all(&a->finished);
	pthread_mutex_unlock(&a->lock);
	store_async_deliver(a, list);
}

/* Connections are first opened here, on the caller's thread, so that a bad spec is reported
   at once; an unreachable database is not an error: the workers open their connections
   themselves once it answers. */
static int store_async_open_all(struct store_async *a, const char **error_r)
{
	for (unsigned i = 0; i < a->nworkers; i++) {
		a->workers[i].a = a;
		int rc = store_open(a->spec, a->state_dir, &a->workers[i].store, error_r);
		if (rc == STORE_ERROR)
			return rc;
		if (rc < 0) {
			log_warn("store: cannot open %s yet: %s", a->spec, *error_r);
			a->workers[i].tried_ms = store_async_now_ms();
		}
	}
	return 0;
}

int store_async_new(struct event_base *base, const char *spec, const char *state_dir,
		    unsigned nworkers, unsigned queue_max, struct store_async **a_r,
		    const char **error_r)
{
	struct store_async *a = xcalloc(1, sizeof(*a));
	*a_r = NULL;
	a->nworkers = nworkers < 1 ? 1 : nworkers > STORE_ASYNC_WORKERS_MAX ? STORE_ASYNC_WORKERS_MAX
									    : nworkers;
	a->queue_max = queue_max != 0 ? queue_max : STORE_ASYNC_QUEUE_DEFAULT;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->done_ev = event_new(base, -1, 0, store_async_report, a);
	a->spec = xstrdup(spec);
	a->state_dir = xstrdup(state_dir);
	int rc = store_async_open_all(a, error_r);
	if (rc < 0) {
		store_async_free(&a);
		return rc;
	}
	for (unsigned i = 0; i < a->nworkers; i++) {
		if (pthread_create(&a->workers[i].thread, NULL, store_worker_main, &a->workers[i]) != 0)
			log_fatal("cannot start a store worker thread");
		a->workers[i].started = true;
	}
	*a_r = a;
	return 0;
}

int store_async_submit(struct store_async *a, store_job_fn *fn, void *arg, store_done_fn *done)
{
	pthread_mutex_lock(&a->lock);
	if (a->stopping || a->nqueued >= a->queue_max) {
		pthread_mutex_unlock(&a->lock);
		return STORE_UNAVAILABLE;
	}
	struct store_job *job = xcalloc(1, sizeof(*job));
	job->fn = fn;
	job->done = done;
	job->arg = arg;
	store_jobs_push(&a->queued, job);
	a->nqueued++;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	a->outstanding++;
	return 0;
}

unsigned store_async_pending(const struct store_async *a)
{
	return a->outstanding;
}

/* Cancelled callbacks run before the workers are joined: one may be what a running job is
   waiting for, and they need nothing from the workers. */
void store_async_free(struct store_async **ap)
{
	struct store_async *a = *ap;
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	struct store_job *cancelled = store_jobs_take_all(&a->queued);
	a->nqueued = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (struct store_job *job = cancelled; job != NULL; job = job->next)
		job->result = STORE_CANCELLED;
	store_async_deliver(a, cancelled);
	for (unsigned i = 0; i < a->nworkers; i++) {
		if (a->workers[i].started)
			pthread_join(a->workers[i].thread, NULL);
		store_free(&a->workers[i].store);
	}
	store_async_report(-1, 0, a);
	event_free(a->done_ev);
	free(a->spec);
	free(a->state_dir);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	xfree(ap);
}
