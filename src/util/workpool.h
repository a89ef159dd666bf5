#ifndef POSTERN_WORKPOOL_H
#define POSTERN_WORKPOOL_H
#include <stdbool.h>

/* Blocking work (a database query, fsync, a Maildir delivery) on a few threads, each result
   handed back on the event loop (DESIGN.md 2): jobs wait in one bounded FIFO queue, a worker
   runs each, and its done callback follows on the loop thread, once. All functions but the
   job itself and workpool_stopping are for the loop thread. */
struct event_base;
struct workpool;

#define WORKPOOL_THREADS_MAX 8

/* Runs on a worker; worker is that thread's state (as given to workpool_new, or NULL). The
   result goes to the job's done callback. */
typedef int workpool_job_fn(void *worker, void *arg);
/* Runs on the loop thread with the job's result, or with the pool's cancelled value when the
   job never ran (the pool stopped first). */
typedef void workpool_done_fn(void *arg, int result);

/* Starts nthreads (1..WORKPOOL_THREADS_MAX) workers; workers (NULL: none) holds each thread's
   state. At most queue_max jobs wait. The base must have been created after
   evthread_use_pthreads(). Never returns NULL. */
struct workpool *workpool_new(struct event_base *base, unsigned nthreads, unsigned queue_max,
			      void *const *workers);
/* Queues fn(worker, arg), followed by done(arg, result) on the loop. Returns 0, or -1 at once
   (done is then never called) when queue_max jobs wait or the pool is stopping. */
int workpool_submit(struct workpool *p, workpool_job_fn *fn, void *arg, workpool_done_fn *done);
/* Returns the number of submitted jobs whose done callback has not run yet. */
unsigned workpool_pending(const struct workpool *p);
/* Returns true once the pool is stopping: long jobs look between their steps (any thread). */
bool workpool_stopping(const struct workpool *p);
/* Stops: queued jobs get done(arg, cancelled), running ones finish, and every outstanding
   done callback has run before it returns; frees *p (NULL allowed) and sets it to NULL. Not
   to be called from a done callback. The workers' states are the caller's. */
void workpool_free(struct workpool **p, int cancelled);

#endif
