#ifndef POSTERN_STORE_ASYNC_H
#define POSTERN_STORE_ASYNC_H

#include "store/store.h"

struct event_base;

/* Store calls off the event loop (DESIGN.md 2): a few worker threads, each with its own store
   connection (neither SQLite nor libpq handles are shared between threads), take jobs from one
   bounded FIFO queue; each result is handed back on the loop thread. When the queue is full a
   submission fails at once, so intake answers 451 4.3.0 instead of piling up work. All
   functions but the job itself are called on the loop thread. */

#define STORE_ASYNC_WORKERS_MAX 8
#define STORE_ASYNC_QUEUE_DEFAULT 1000

struct store_async;

/* Runs on a worker with that worker's handle; returns a store result (1, 0 or a negative
   store_status), which done receives. Results other than that go through arg. */
typedef int store_job_fn(struct store *s, void *arg);
/* Runs on the loop thread with the job's result, or STORE_CANCELLED if it never ran. */
typedef void store_done_fn(void *arg, int result);

/* Opens nworkers (1..STORE_ASYNC_WORKERS_MAX) connections to the store named by spec (as
   store_open) and starts their threads; at most queue_max jobs wait (0: the default). A
   database that cannot be reached yet is not an error: each worker opens its connection when
   it can (trying at most once a second), and its jobs get STORE_UNAVAILABLE meanwhile. The
   base must have been created after evthread_use_pthreads(). Returns 0 and *a_r, or
   STORE_ERROR for a bad spec with *error_r (valid until the next store_open on this thread). */
int store_async_new(struct event_base *base, const char *spec, const char *state_dir,
		    unsigned nworkers, unsigned queue_max, struct store_async **a_r,
		    const char **error_r);
/* Queues fn(store, arg); done(arg, result) follows on the loop. Returns 0, or
   STORE_UNAVAILABLE at once (done is then never called) when the queue is full or shutdown
   has begun. */
int store_async_submit(struct store_async *a, store_job_fn *fn, void *arg, store_done_fn *done);
/* Returns the number of submitted jobs whose done callback has not run yet. */
unsigned store_async_pending(const struct store_async *a);
/* Shuts down: queued jobs are cancelled (done gets STORE_CANCELLED), running ones finish, and
   every outstanding done callback has run before it returns; then closes the connections and
   frees *a (NULL allowed), setting it to NULL. Not to be called from a done callback. */
void store_async_free(struct store_async **a);

#endif
