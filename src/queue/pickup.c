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
#include "route/alias_store.h"
#include "route/router.h"
#include "smtp/server.h"
#include "store/store_async.h"
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
	/* until the aliases are expanded (on a store worker) */
	struct queue_envelope env;
	off_t off;               /* the maildrop file's content */
	uint64_t content_size;
	struct alias_result *res; /* one per recipient of env */
	char delimiters[16];
	unsigned max_depth;
};

static void pickup_release(struct pickup *p)
{
	if (--p->inflight > 0)
		return;
	if (p->freed) {
		free(p);
	} else if (p->backlog) {
		struct timeval now = { 0, 0 };
		evtimer_add(p->timer, &now);
	}
}

static void pickup_job_free(struct pickup_job *job)
{
	for (size_t i = 0; job->res != NULL && i < job->env.nrcpts; i++)
		alias_result_free(&job->res[i]);
	free(job->res);
	queue_envelope_clear(&job->env);
	free(job);
}

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
	pickup_job_free(job);
	pickup_release(p);
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

/* One recipient's expansion into env: its address targets (each with the original address as
   ORCPT), or the original recipient refused ("CODE D.D.D text") when the alias loops or says
   error:, or waits (4.3.5) for an agent postern does not have yet; discard: adds nothing, and
   an alias that only discards leaves the recipient marked QUEUE_DISCARDED. */
static void pickup_add_expanded(struct queue_envelope *env, const struct queue_rcpt *old,
				const struct alias_result *res)
{
	char refusal[600];
	size_t before = env->nrcpts;
	if (res->status != ALIAS_OK) {
		snprintf(refusal, sizeof(refusal), "%d %s %s", res->code, res->enhanced, res->text);
		queue_envelope_add_rcpt(env, old->address, old->notify, old->orcpt);
		queue_envelope_refuse_last(env, refusal);
		return;
	}
	for (size_t i = 0; i < res->count; i++) {
		const struct alias_target *t = &res->targets[i];
		if (!t->local) {
			char *orcpt = old->orcpt != NULL || strcmp(t->target, old->address) == 0
					      ? NULL : router_orcpt(old->address);
			queue_envelope_add_rcpt(env, t->target, old->notify, orcpt != NULL ? orcpt : old->orcpt);
			free(orcpt);
			continue;
		}
		struct nexthop nh;
		const char *error;
		if (nexthop_parse(t->target, &nh, &error) == 0 && nh.kind == NEXTHOP_DISCARD) {
			nexthop_clear(&nh);
			continue;
		}
		if (nh.kind == NEXTHOP_ERROR)
			snprintf(refusal, sizeof(refusal), "%u %s %s", nh.code,
				 nh.status[0] ? nh.status : nh.code >= 500 ? "5.0.0" : "4.0.0", nh.text);
		else
			snprintf(refusal, sizeof(refusal), "451 4.3.5 alias target not available yet: %.300s", t->target);
		nexthop_clear(&nh);
		queue_envelope_add_rcpt(env, old->address, old->notify, old->orcpt);
		queue_envelope_refuse_last(env, refusal);
	}
	if (env->nrcpts == before) { /* only discard: recorded delivered by the queue manager */
		queue_envelope_add_rcpt(env, old->address, old->notify, old->orcpt);
		queue_envelope_refuse_last(env, QUEUE_DISCARDED);
	}
}

static void pickup_apply_aliases(struct pickup_job *job)
{
	struct queue_envelope *env = &job->env;
	struct queue_rcpt *old = env->rcpts;
	size_t n = env->nrcpts;
	env->rcpts = NULL;
	env->nrcpts = env->rcpts_cap = 0;
	for (size_t i = 0; i < n; i++) {
		pickup_add_expanded(env, &old[i], &job->res[i]);
		alias_result_free(&job->res[i]);
		free(old[i].address);
		free(old[i].orcpt);
		free(old[i].refusal);
	}
	free(old);
	free(job->res);
	job->res = NULL;
	job->nrcpts = env->nrcpts;
}

/* On a store worker. */
static int pickup_expand(struct store *s, void *arg)
{
	struct pickup_job *job = arg;
	struct alias_opts opts = { .delimiters = job->delimiters, .max_depth = job->max_depth };
	for (size_t i = 0; i < job->env.nrcpts; i++) {
		alias_expand(job->env.rcpts[i].address, &opts, alias_store_lookup, s, &job->res[i]);
		if (job->res[i].status == ALIAS_TEMPFAIL)
			return STORE_UNAVAILABLE;
	}
	return 0;
}

/* Returns true when the job went on to the committer (which then owns it). */
static bool pickup_convert_job(struct pickup *p, struct pickup_job *job)
{
	pickup_apply_aliases(job);
	int fd = open(job->path, O_RDONLY | O_CLOEXEC);
	bool sent = fd >= 0 && pickup_convert(p, job, &job->env, fd, job->off, job->content_size) == 0;
	if (fd >= 0)
		close(fd);
	return sent;
}

/* The files of a pickup that ends now (or whose store cannot answer) stay in maildrop/ for the
   next scan. */
static void pickup_expanded(void *arg, int result)
{
	struct pickup_job *job = arg;
	struct pickup *p = job->p;
	if (result < 0 && result != STORE_CANCELLED)
		log_warn("%s: pickup waits: the store cannot answer for its recipients' aliases", job->id);
	if (result < 0 || p->freed || !pickup_convert_job(p, job))
		pickup_job_free(job);
	pickup_release(p);
}

/* Whether id is queued already: committed before a crash, and perhaps already being
   delivered, deferred or held by now. */
static bool pickup_queued(const struct pickup *p, const char *id)
{
	static const char *const queues[] = { SPOOL_INCOMING, "active", "deferred", "hold", "archive" };
	char path[4096];
	for (size_t i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
		if (spool_path(p->ctx->spool, queues[i], id, path, sizeof(path)) == 0 && access(path, F_OK) == 0)
			return true;
	}
	return false;
}

static void pickup_one(struct pickup *p, const char *path, const char *id)
{
	if (pickup_queued(p, id)) {
		unlink(path); /* committed before a crash, the maildrop copy was left behind */
		return;
	}
	struct pickup_job *job = xcalloc(1, sizeof(*job));
	const char *why;
	if (qfile_load(path, &job->env, &job->off, &job->content_size, &why) < 0 || strcmp(job->env.id, id) != 0) {
		spool_quarantine(p->ctx->spool, SPOOL_MAILDROP, id, why);
		pickup_job_free(job);
		return;
	}
	router_rewrite_envelope(p->ctx->router, &job->env);
	job->p = p;
	memcpy(job->id, id, sizeof(job->id)); /* a valid ID, checked by the caller */
	snprintf(job->path, sizeof(job->path), "%s", path);
	snprintf(job->sender, sizeof(job->sender), "%s", job->env.sender);
	snprintf(job->delimiters, sizeof(job->delimiters), "%s", router_delimiters(p->ctx->router));
	job->max_depth = (unsigned)p->ctx->conf->alias_max_depth;
	job->res = xcalloc(job->env.nrcpts, sizeof(*job->res));
	if (p->ctx->store == NULL || store_async_submit(p->ctx->store, pickup_expand, job, pickup_expanded) < 0) {
		log_warn("%s: pickup waits: the store is not available for its recipients' aliases", id);
		pickup_job_free(job);
		return;
	}
	p->inflight++;
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
