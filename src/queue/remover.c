#include "queue/remover.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

#define REMOVER_BACKLOG_MAX 4096

struct removal {
	struct removal *next;
	int fd;
	char path[];
};

struct remover {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct removal *head, **tail;
	unsigned backlog; /* queued or being removed */
	bool stopping;
};

static void remove_one(const char *path, int fd)
{
	if (unlink(path) < 0 && errno != ENOENT)
		log_error("cannot remove %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void *remover_thread(void *arg)
{
	struct remover *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (r->head == NULL && !r->stopping)
			pthread_cond_wait(&r->work, &r->lock);
		if (r->head == NULL)
			break;
		struct removal *x = r->head;
		r->head = x->next;
		if (r->head == NULL)
			r->tail = &r->head;
		pthread_mutex_unlock(&r->lock);
		remove_one(x->path, x->fd);
		free(x);
		pthread_mutex_lock(&r->lock);
		if (--r->backlog == 0)
			pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct remover *remover_new(void)
{
	struct remover *r = xcalloc(1, sizeof(*r));
	r->tail = &r->head;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->idle, NULL);
	if (pthread_create(&r->thread, NULL, remover_thread, r) != 0)
		log_fatal("cannot start the remover thread");
	return r;
}

void remover_add(struct remover *r, const char *path, int fd)
{
	size_t len = strlen(path) + 1;
	struct removal *x = xmalloc(sizeof(*x) + len);
	x->next = NULL;
	x->fd = fd;
	memcpy(x->path, path, len);
	pthread_mutex_lock(&r->lock);
	if (r->backlog >= REMOVER_BACKLOG_MAX) {
		pthread_mutex_unlock(&r->lock);
		remove_one(x->path, x->fd);
		free(x);
		return;
	}
	r->backlog++;
	*r->tail = x;
	r->tail = &x->next;
	pthread_cond_signal(&r->work);
	pthread_mutex_unlock(&r->lock);
}

void remover_wait(struct remover *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->backlog > 0)
		pthread_cond_wait(&r->idle, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

void remover_free(struct remover **rp)
{
	struct remover *r = *rp;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_signal(&r->work);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->idle);
	xfree(rp);
}
