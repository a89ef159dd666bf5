#include "store/store_async.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "util/log.h"
#include "util/workpool.h"
#include "util/xalloc.h"

/* A workpool (util/workpool.h) whose threads each own a store connection. */

#define STORE_ASYNC_RETRY_MS 1000

struct store_worker {
	struct store_async *a;
	struct store *store; /* this thread's own connection; NULL until one opens */
	int64_t tried_ms;    /* when opening it last failed */
};

struct store_async {
	struct workpool *pool;
	char *spec, *state_dir;
	struct store_worker workers[STORE_ASYNC_WORKERS_MAX];
	unsigned nworkers;
};

/* One submitted call, carried through the pool. */
struct store_call {
	store_job_fn *fn;
	store_done_fn *done;
	void *arg;
};

static int64_t store_async_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A worker without a connection (the database was unreachable) opens one itself, at most once
   a second; meanwhile its jobs fail as unavailable without waiting. */
static int store_worker_run(void *worker, void *arg)
{
	struct store_worker *w = worker;
	struct store_call *call = arg;
	if (w->store == NULL && store_async_now_ms() - w->tried_ms >= STORE_ASYNC_RETRY_MS) {
		const char *error;
		if (store_open(w->a->spec, w->a->state_dir, &w->store, &error) < 0) {
			w->tried_ms = store_async_now_ms();
			log_warn("store: cannot open %s: %s", w->a->spec, error);
		}
	}
	return w->store != NULL ? call->fn(w->store, call->arg) : STORE_UNAVAILABLE;
}

static void store_call_done(void *arg, int result)
{
	struct store_call *call = arg;
	call->done(call->arg, result);
	free(call);
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

static void store_async_close_all(struct store_async *a)
{
	for (unsigned i = 0; i < a->nworkers; i++)
		store_free(&a->workers[i].store);
	free(a->spec);
	free(a->state_dir);
	free(a);
}

int store_async_new(struct event_base *base, const char *spec, const char *state_dir,
		    unsigned nworkers, unsigned queue_max, struct store_async **a_r,
		    const char **error_r)
{
	struct store_async *a = xcalloc(1, sizeof(*a));
	*a_r = NULL;
	a->nworkers = nworkers < 1 ? 1 : nworkers > STORE_ASYNC_WORKERS_MAX ? STORE_ASYNC_WORKERS_MAX
									    : nworkers;
	a->spec = xstrdup(spec);
	a->state_dir = xstrdup(state_dir);
	int rc = store_async_open_all(a, error_r);
	if (rc < 0) {
		store_async_close_all(a);
		return rc;
	}
	void *states[STORE_ASYNC_WORKERS_MAX];
	for (unsigned i = 0; i < a->nworkers; i++)
		states[i] = &a->workers[i];
	a->pool = workpool_new(base, a->nworkers, queue_max != 0 ? queue_max : STORE_ASYNC_QUEUE_DEFAULT,
			       states);
	*a_r = a;
	return 0;
}

int store_async_submit(struct store_async *a, store_job_fn *fn, void *arg, store_done_fn *done)
{
	struct store_call *call = xmalloc(sizeof(*call));
	*call = (struct store_call){ .fn = fn, .done = done, .arg = arg };
	if (workpool_submit(a->pool, store_worker_run, call, store_call_done) < 0) {
		free(call);
		return STORE_UNAVAILABLE;
	}
	return 0;
}

unsigned store_async_pending(const struct store_async *a)
{
	return workpool_pending(a->pool);
}

void store_async_free(struct store_async **ap)
{
	struct store_async *a = *ap;
	if (a == NULL)
		return;
	workpool_free(&a->pool, STORE_CANCELLED);
	store_async_close_all(a);
	*ap = NULL;
}
