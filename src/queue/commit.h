#ifndef POSTERN_COMMIT_H
#define POSTERN_COMMIT_H

#include "queue/qfile.h"

struct event_base;
struct spool;

/* Group commit (DESIGN.md 3): finished queue files are handed to one committer thread, which
   works in steps: each step takes every file waiting, links the anonymous ones into their
   queue, and one syncfs makes their content and names durable; only then are they reported
   back on the event loop. Under concurrency the accept path pays about one file-system sync
   per batch of messages. */

struct committer;

/* Called on the loop thread. result is 0 when the file is durable in its queue, else an
   errno value (the file is then already removed). */
typedef void commit_cb(void *arg, int result);

/* Starts the committer thread. The base must have been created after evthread_use_pthreads. */
struct committer *committer_new(struct event_base *base, const struct spool *spool);
/* Takes ownership of a finished qf and moves it to queue/ durably; cb runs on the loop. */
void committer_submit(struct committer *c, struct qfile *qf, const char *queue, commit_cb *cb,
		      void *arg);
/* Returns the number of submissions not yet reported back. */
unsigned committer_pending(const struct committer *c);
/* Finishes what is queued, stops the thread and frees *c (NULL allowed). Callbacks of work
   still pending run before it returns. */
void committer_free(struct committer **c);

#endif
