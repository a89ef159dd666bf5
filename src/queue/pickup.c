#include "queue/pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/config.h"
#include "queue/cleanup.h"
#include "queue/commit.h"
#include "queue/qfile.h"
#include "queue/qmgr.h"
#include "queue/spool.h"
#include "route/router.h"
#include "smtp/server.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/xalloc.h"

/* How many messages one scan takes, so that a full maildrop never stalls the loop. */
#define PICKUP_BATCH 100

struct pickup {
	const struct smtp_context *ctx;
	struct event *timer;
	unsigned inflight;
	bool freed;
	bool backlog; /* the last scan stopped at PICKUP_BATCH: scan again once it is committed */
};

struct pickup_job {
	struct pickup *p;
	char id[QUEUE_ID_LEN + 1];
	char path[4096];
	char sender[1024];
	uint64_t size;
	size_t nrcpts;
	bool held; /* committed to hold/ by a hold: rule */
};

/* Splits wire-form content into lines for cleanup; a partial line is carried to the next
   chunk. */
static enum cleanup_status pickup_feed(struct cleanup *c, struct buf *carry, const char *data,
				       size_t n)
{
	enum cleanup_status st = CLEANUP_OK;
	buf_append(carry, data, n);
	size_t start = 0;
	for (size_t i = 0; i + 1 < carry->len && st == CLEANUP_OK; i++) {
		if (carry->data[i] == '\r' && carry->data[i + 1] == '\n') {
			st = cleanup_line(c, carry->data + start, i - start);
			start = i + 2;
			i++;
		}
	}
	memmove(carry->data, carry->data + start, carry->len - start);
	carry->len -= start;
	return st;
}

static enum cleanup_status pickup_copy(struct cleanup *c, int fd, off_t off, uint64_t size)
{
	static char chunk[65536];
	struct buf carry = { 0 };
	enum cleanup_status st = CLEANUP_OK;
	while (size > 0 && st == CLEANUP_OK) {
		size_t want = size < sizeof(chunk) ? (size_t)size : sizeof(chunk);
		ssize_t got = fs_pread_all(fd, chunk, want, off);
		if (got <= 0) {
			st = CLEANUP_WRITE_ERROR;
			break;
		}
		st = pickup_feed(c, &carry, chunk, (size_t)got);
		off += got;
		size -= (uint64_t)got;
	}
	if (st == CLEANUP_OK && carry.len > 0)
		st = cleanup_line(c, carry.data, carry.len);
	buf_free(&carry);
	return st == CLEANUP_OK ? cleanup_finish(c) : st;
}

static void pickup_committed(void *arg, int result)
{
	struct pickup_job *job = arg;
	if (result == 0) {
		log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, proto=local, status=%s",
			 job->id, job->sender, job->size, job->nrcpts, job->held ? "held" : "queued");
		if (job->p->ctx->qmgr != NULL && !job->held)
			qmgr_enqueue(job->p->ctx->qmgr, job->id);
		if (unlink(job->path) < 0 && errno != ENOENT)
			log_error("%s: cannot remove %s: %s", job->id, job->path, strerror(errno));
	} else {
		log_error("%s: pickup commit failed, will retry: %s", job->id, strerror(result));
	}
	struct pickup *p = job->p;
	free(job);
	if (--p->inflight > 0)
		return;
	if (p->freed) {
		free(p);
	} else if (p->backlog) {
		struct timeval now = { 0, 0 };
		evtimer_add(p->timer, &now);
	}
}

/* Returns 0 when the message went to the committer (or needed nothing), -1 on a local error
   that a later scan may get past. */
static int pickup_convert(struct pickup *p, struct pickup_job *job, const struct queue_envelope *env,
			  int fd, off_t off, uint64_t size)
{
	struct qfile *qf;
	if (qfile_create(p->ctx->spool, env, &qf) < 0) {
		if (errno != EEXIST)
			log_error("%s: pickup cannot create queue file: %s", job->id, strerror(errno));
		return -1;
	}
	struct cleanup_params cp = {
		.id = env->id,
		.hostname = p->ctx->hostname,
		.proto = "local",
		.sender = env->sender,
		.for_rcpt = env->nrcpts == 1 ? env->rcpts[0].address : NULL,
		.full_name = env->full_name,
		.local = true,
		.router = p->ctx->router,
		.header_size_limit = INT64_MAX, /* sendmail enforced it before saying yes */
	};
	struct cleanup *c = cleanup_new(&cp, qf);
	enum cleanup_status st = pickup_copy(c, fd, off, size);
	cleanup_free(&c);
	if (st != CLEANUP_OK) {
		log_error("%s: pickup cannot write queue file: %s", job->id, strerror(qfile_error(qf)));
		qfile_abort(&qf);
		return -1;
	}
	job->size = qfile_content_size(qf);
	p->inflight++;
	const struct policy_rule *hold = router_hold(p->ctx->router, env);
	job->held = hold != NULL;
	if (hold != NULL)
		log_info("%s: hold by %s:%u", job->id, hold->file, hold->line);
	committer_submit(p->ctx->committer, qf, hold != NULL ? "hold" : SPOOL_INCOMING, pickup_committed, job);
	return 0;
}

static void pickup_one(struct pickup *p, const char *path, const char *id)
{
	char incoming[4096], held[4096];
	spool_path(p->ctx->spool, SPOOL_INCOMING, id, incoming, sizeof(incoming));
	spool_path(p->ctx->spool, "hold", id, held, sizeof(held));
	if (access(incoming, F_OK) == 0 || access(held, F_OK) == 0) {
		unlink(path); /* committed before a crash, the maildrop copy was left behind */
		return;
	}
	struct queue_envelope env;
	off_t off;
	uint64_t size;
	const char *why;
	if (qfile_load(path, &env, &off, &size, &why) < 0 || strcmp(env.id, id) != 0) {
		spool_quarantine(p->ctx->spool, SPOOL_MAILDROP, id, why);
		return;
	}
	router_rewrite_envelope(p->ctx->router, &env);
	struct pickup_job *job = xcalloc(1, sizeof(*job));
	job->p = p;
	memcpy(job->id, id, sizeof(job->id)); /* a valid ID, checked by the caller */
	snprintf(job->path, sizeof(job->path), "%s", path);
	snprintf(job->sender, sizeof(job->sender), "%s", env.sender);
	job->nrcpts = env.nrcpts;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pickup_convert(p, job, &env, fd, off, size) < 0)
		free(job);
	if (fd >= 0)
		close(fd);
	queue_envelope_clear(&env);
}

static unsigned pickup_scan_dir(struct pickup *p, const char *dir, unsigned budget)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	unsigned done = 0;
	struct dirent *de;
	char path[4096];
	while (done < budget && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (!queue_id_valid(de->d_name)) {
			log_warn("maildrop: ignoring foreign file %s", path);
			continue;
		}
		pickup_one(p, path, de->d_name);
		done++;
	}
	closedir(d);
	return done;
}

static void pickup_scan(evutil_socket_t fd, short what, void *arg)
{
	static const char hashes[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	struct pickup *p = arg;
	struct timeval tv = { .tv_sec = p->ctx->conf->pickup_interval };
	evtimer_add(p->timer, &tv);
	/* Files still on their way through the committer would be seen twice. */
	if (p->inflight > 0)
		return;
	unsigned budget = PICKUP_BATCH;
	char dir[4096];
	for (int h = 0; hashes[h] != '\0' && budget > 0; h++) {
		snprintf(dir, sizeof(dir), "%s/%s/%c", spool_root(p->ctx->spool), SPOOL_MAILDROP, hashes[h]);
		budget -= pickup_scan_dir(p, dir, budget);
	}
	p->backlog = budget == 0;
}

struct pickup *pickup_new(const struct smtp_context *ctx)
{
	struct pickup *p = xcalloc(1, sizeof(*p));
	p->ctx = ctx;
	p->timer = evtimer_new(ctx->base, pickup_scan, p);
	struct timeval now = { 0, 0 };
	evtimer_add(p->timer, &now);
	return p;
}

void pickup_free(struct pickup **pp)
{
	struct pickup *p = *pp;
	if (p == NULL)
		return;
	event_free(p->timer);
	p->freed = true;
	if (p->inflight == 0)
		free(p);
	*pp = NULL;
}
