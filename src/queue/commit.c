#include "queue/commit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "queue/spool.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xalloc.h"

struct commit_req {
	struct qfile *qf;
	const char *queue;
	commit_cb *cb;
	void *arg;
	int result;
	bool placed; /* dest exists */
	char dest[4096];
	struct commit_req *next;
};

struct committer {
	const struct spool *spool;
	int rootfd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct commit_req *pending, *done;
	bool stopping;
	unsigned outstanding; /* touched on the loop thread only */
	struct event *done_ev;
};

static void commit_fail(struct commit_req *r, int err)
{
	if (r->result == 0)
		r->result = err ? err : EIO;
}

static void commit_place(struct committer *c, struct commit_req *r)
{
	if (r->result == 0 && spool_path(c->spool, r->queue, qfile_id(r->qf), r->dest, sizeof(r->dest)) < 0)
		commit_fail(r, ENAMETOOLONG);
	if (r->result == 0 && qfile_place(r->qf, r->dest) < 0)
		commit_fail(r, errno);
	r->placed = r->result == 0;
}

/* When syncfs fails, each file and each placed name is made durable on its own; what still
   fails is reported, and a placed file whose directory could not be synced is taken back out
   of the queue rather than delivered behind the client's back. */
static void commit_sync(struct committer *c, struct commit_req *batch)
{
	if (syncfs(c->rootfd) == 0)
		return;
	for (struct commit_req *r = batch; r != NULL; r = r->next) {
		char dir[4096];
		if (r->result == 0 && fsync(qfile_fd(r->qf)) < 0)
			commit_fail(r, errno);
		if (r->result != 0 || !r->placed)
			continue;
		spool_dir(c->spool, r->queue, qfile_id(r->qf), dir, sizeof(dir));
		if (fs_fsync_dir(dir) < 0)
			commit_fail(r, errno);
	}
}

/* Anonymous files are linked into their queue before the sync, so one sync makes both their
   content and their names durable: under load one journal commit per batch, paid once per
   batch rather than per message. Named tmp/ files (no O_TMPFILE) need a second sync for
   their renames. */
static void commit_step(struct committer *c, struct commit_req *batch)
{
	bool renames = false;
	for (struct commit_req *r = batch; r != NULL; r = r->next) {
		if (qfile_anonymous(r->qf))
			commit_place(c, r);
	}
	commit_sync(c, batch);
	for (struct commit_req *r = batch; r != NULL; r = r->next) {
		if (r->result == 0 && !r->placed) {
			commit_place(c, r);
			renames = true;
		}
	}
	if (renames)
		commit_sync(c, batch);
	for (struct commit_req *r = batch; r != NULL; r = r->next) {
		if (r->result != 0 && r->placed)
			unlink(r->dest);
		if (r->result != 0)
			qfile_abort(&r->qf);
		else
			qfile_close(&r->qf);
	}
}

static struct commit_req *commit_reverse(struct commit_req *list)
{
	struct commit_req *out = NULL;
	while (list != NULL) {
		struct commit_req *next = list->next;
		list->next = out;
		out = list;
		list = next;
	}
	return out;
}

static void commit_post(struct committer *c, struct commit_req *list)
{
	if (list == NULL)
		return;
	struct commit_req *last = list;
	while (last->next != NULL)
		last = last->next;
	last->next = c->done;
	c->done = list;
	event_active(c->done_ev, EV_READ, 0);
}

static void *commit_thread(void *arg)
{
	struct committer *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->pending == NULL && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->pending == NULL)
			break;
		struct commit_req *batch = commit_reverse(c->pending);
		c->pending = NULL;
		pthread_mutex_unlock(&c->lock);
		commit_step(c, batch);
		pthread_mutex_lock(&c->lock);
		commit_post(c, batch);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void commit_report(evutil_socket_t fd, short what, void *arg)
{
	struct committer *c = arg;
	pthread_mutex_lock(&c->lock);
	struct commit_req *list = commit_reverse(c->done);
	c->done = NULL;
	pthread_mutex_unlock(&c->lock);
	while (list != NULL) {
		struct commit_req *r = list;
		list = r->next;
		c->outstanding--;
		r->cb(r->arg, r->result);
		free(r);
	}
}

struct committer *committer_new(struct event_base *base, const struct spool *spool)
{
	struct committer *c = xcalloc(1, sizeof(*c));
	c->spool = spool;
	c->rootfd = open(spool_root(spool), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->rootfd < 0)
		log_fatal("cannot open spool %s: %s", spool_root(spool), strerror(errno));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->done_ev = event_new(base, -1, 0, commit_report, c);
	if (pthread_create(&c->thread, NULL, commit_thread, c) != 0)
		log_fatal("cannot start the committer thread");
	return c;
}

void committer_submit(struct committer *c, struct qfile *qf, const char *queue, commit_cb *cb,
		      void *arg)
{
	struct commit_req *r = xcalloc(1, sizeof(*r));
	r->qf = qf;
	r->queue = queue;
	r->cb = cb;
	r->arg = arg;
	c->outstanding++;
	pthread_mutex_lock(&c->lock);
	r->next = c->pending;
	c->pending = r;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

unsigned committer_pending(const struct committer *c)
{
	return c->outstanding;
}

void committer_free(struct committer **cp)
{
	struct committer *c = *cp;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	commit_report(-1, 0, c);
	event_free(c->done_ev);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	close(c->rootfd);
	xfree(cp);
}
