#include "queue/tmppool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

struct tmppool {
	char *dir, *subdirs;
	unsigned turn; /* the next of subdirs to use */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t low;
	int *fds;
	unsigned n, size;
	bool stopping;
};

static int tmppool_open(struct tmppool *p)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%c", p->dir, p->subdirs[p->turn++ % strlen(p->subdirs)]);
	return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
}

/* Sleeps until the pool is half empty, then fills it: one wake-up per batch of takes. */
static void *tmppool_thread(void *arg)
{
	struct tmppool *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		if (p->n >= p->size) {
			pthread_cond_wait(&p->low, &p->lock);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		int fd = tmppool_open(p);
		int err = errno;
		pthread_mutex_lock(&p->lock);
		if (fd >= 0) {
			p->fds[p->n++] = fd;
			continue;
		}
		/* Sessions open their own meanwhile; this retries in a second. */
		log_error("cannot make a file in %s/: %s", p->dir, strerror(err));
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&p->low, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct tmppool *tmppool_new(const char *dir, const char *subdirs, unsigned size)
{
	struct tmppool *p = xcalloc(1, sizeof(*p));
	p->dir = xstrdup(dir);
	p->subdirs = xstrdup(subdirs);
	int probe = tmppool_open(p);
	if (probe < 0) {
		int err = errno;
		free(p->dir);
		free(p->subdirs);
		free(p);
		errno = err;
		return NULL;
	}
	p->size = size;
	p->fds = xcalloc(size, sizeof(*p->fds));
	p->fds[p->n++] = probe;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->low, NULL);
	if (pthread_create(&p->thread, NULL, tmppool_thread, p) != 0)
		log_fatal("cannot start the tmp file thread");
	return p;
}

int tmppool_take(struct tmppool *p)
{
	int fd = -1;
	pthread_mutex_lock(&p->lock);
	if (p->n > 0)
		fd = p->fds[--p->n];
	if (p->n <= p->size / 2)
		pthread_cond_signal(&p->low);
	pthread_mutex_unlock(&p->lock);
	return fd;
}

void tmppool_free(struct tmppool **pp)
{
	struct tmppool *p = *pp;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_signal(&p->low);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	for (unsigned i = 0; i < p->n; i++)
		close(p->fds[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->low);
	free(p->fds);
	free(p->dir);
	free(p->subdirs);
	xfree(pp);
}
