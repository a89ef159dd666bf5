/* The queue manager: admission into the bounded active set, finishing messages, retries. */
#include "queue/qmgr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/config.h"
#include "queue/deferlog.h"
#include "queue/qmgr_int.h"
#include "queue/remover.h"
#include "queue/spool.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

static const char qmgr_hash_chars[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void qmgr_idlist_push(struct qmgr_idlist *l, const char *id, const char *from)
{
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		char(*ids)[QUEUE_ID_LEN + 1] = xcalloc(cap, sizeof(*ids));
		const char **froms = xcalloc(cap, sizeof(*froms));
		for (size_t i = 0; i < l->len; i++) {
			memcpy(ids[i], l->ids[(l->head + i) % l->cap], sizeof(ids[i]));
			froms[i] = l->from[(l->head + i) % l->cap];
		}
		free(l->ids);
		free(l->from);
		l->ids = ids;
		l->from = froms;
		l->head = 0;
		l->cap = cap;
	}
	size_t tail = (l->head + l->len) % l->cap;
	memcpy(l->ids[tail], id, QUEUE_ID_LEN + 1);
	l->from[tail] = from;
	l->len++;
}

static bool qmgr_idlist_pop(struct qmgr_idlist *l, char *id, const char **from)
{
	if (l->len == 0)
		return false;
	memcpy(id, l->ids[l->head], QUEUE_ID_LEN + 1);
	*from = l->from[l->head];
	l->head = (l->head + 1) % l->cap;
	l->len--;
	return true;
}

void qmgr_list(struct qmgr *q, const char *id, const char *from)
{
	qmgr_idlist_push(&q->waiting, id, from);
	if (strcmp(from, "deferred") == 0)
		q->waiting_deferred++;
}

static void qmgr_kick(struct qmgr *q)
{
	if (!q->stopping)
		event_active(q->admit_ev, EV_TIMEOUT, 0);
}

/* While delivery is paused nothing is listed: mail stays where it is on disk, and the scans
   made when delivery resumes find it. */
void qmgr_enqueue(struct qmgr *q, const char *id)
{
	if (q->ctx->conf->delivery_paused)
		return;
	qmgr_list(q, id, SPOOL_INCOMING);
	qmgr_kick(q);
}

unsigned qmgr_inflight(const struct qmgr *q)
{
	return q != NULL ? q->inflight : 0;
}

unsigned qmgr_active(const struct qmgr *q)
{
	return q->nmsgs;
}

static void qmgr_msg_unlink(struct qmsg *m)
{
	struct qmgr *q = m->q;
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		q->msgs = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	q->nmsgs--;
	if (m->fd >= 0)
		close(m->fd);
	queue_envelope_clear(&m->env);
	free(m->rcpts);
	free(m->path);
	free(m);
}

/* The last error of each deferred recipient survives in the defer side file (deferlog.h). */
static void qmgr_deferlog_write(struct qmsg *m)
{
	char path[4096];
	if (spool_path(m->q->ctx->spool, SPOOL_DEFER, m->id, path, sizeof(path)) < 0)
		return;
	FILE *f = fopen(path, "we");
	if (f == NULL) {
		log_error("%s: cannot write %s: %s", m->id, path, strerror(errno));
		return;
	}
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		const struct qrcpt *r = &m->rcpts[i];
		if (!r->has_result || r->state != QRCPT_DEFER)
			continue;
		struct deferlog_entry e = { .index = i, .code = r->last.code, .when_us = r->last_us };
		snprintf(e.dsn, sizeof(e.dsn), "%s", r->last.dsn);
		snprintf(e.remote, sizeof(e.remote), "%s", r->last.remote_mta);
		snprintf(e.text, sizeof(e.text), "%s", r->last.text);
		deferlog_write(f, &e);
	}
	if (m->warned)
		fputs(DEFERLOG_WARNED "\n", f);
	fclose(f);
}

static void qmgr_deferlog_line(struct qmsg *m, const char *line)
{
	struct deferlog_entry e;
	if (strncmp(line, DEFERLOG_WARNED, strlen(DEFERLOG_WARNED)) == 0)
		m->warned = true;
	if (deferlog_parse(line, &e) < 0 || e.index >= m->env.nrcpts)
		return;
	struct qrcpt *r = &m->rcpts[e.index];
	delivery_result_set(&r->last, e.index, DELIVERY_DEFER, e.code, e.dsn, "%s", e.text);
	snprintf(r->last.remote_mta, sizeof(r->last.remote_mta), "%s", e.remote);
	r->has_result = true;
	r->last_us = e.when_us;
}

static void qmgr_deferlog_read(struct qmsg *m)
{
	char path[4096], line[1024];
	if (spool_path(m->q->ctx->spool, SPOOL_DEFER, m->id, path, sizeof(path)) < 0)
		return;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		qmgr_deferlog_line(m, line);
	fclose(f);
}

static void qmgr_deferlog_remove(struct qmsg *m)
{
	char path[4096];
	if (spool_path(m->q->ctx->spool, SPOOL_DEFER, m->id, path, sizeof(path)) == 0)
		unlink(path);
}

static int qmgr_move(struct qmsg *m, const char *to)
{
	char dst[4096];
	if (spool_path(m->q->ctx->spool, to, m->id, dst, sizeof(dst)) < 0 || rename(m->path, dst) < 0) {
		log_error("%s: cannot move to %s/: %s", m->id, to, strerror(errno));
		return -1;
	}
	return 0;
}

/* Retry after about the message's age, clamped to [minimal, maximal]_backoff_time: new mail
   is retried soon, old mail rarely. The time is the deferred file's mtime, so a restart with a
   large deferred queue needs no memory to remember it. */
static void qmgr_defer(struct qmsg *m)
{
	const struct config *conf = m->q->ctx->conf;
	int64_t now = time_now_us();
	int64_t age = (now - m->env.arrival_us) / 1000000;
	int64_t backoff = age < conf->minimal_backoff_time ? conf->minimal_backoff_time
			  : age > conf->maximal_backoff_time ? conf->maximal_backoff_time : age;
	struct timespec ts[2] = { { now / 1000000 + backoff, 0 }, { now / 1000000 + backoff, 0 } };
	qmgr_deferlog_write(m);
	if (utimensat(AT_FDCWD, m->path, ts, 0) < 0)
		log_error("%s: cannot set the retry time: %s", m->id, strerror(errno));
	if (qmgr_move(m, "deferred") == 0)
		log_info("%s: deferred, next attempt in %llds", m->id, (long long)backoff);
}

static void qmgr_done(struct qmsg *m)
{
	bool bounced = false, deferred = false;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		bounced |= m->env.rcpts[i].state == QFILE_RCPT_BOUNCED;
		deferred |= m->rcpts[i].state == QRCPT_DEFER;
	}
	if (deferred) {
		qmgr_defer(m);
	} else if (bounced && m->q->ctx->conf->archive_undeliverable) {
		if (m->deferlog)
			qmgr_deferlog_remove(m);
		if (qmgr_move(m, "archive") == 0)
			log_info("%s: archived", m->id);
	} else {
		if (m->deferlog)
			qmgr_deferlog_remove(m);
		remover_add(m->q->remover, m->path, m->fd);
		m->fd = -1;
		log_info("%s: removed", m->id);
	}
	struct qmgr *q = m->q;
	qmgr_msg_unlink(m);
	qmgr_kick(q);
}

/* Past its lifetime (bounce_queue_lifetime for the null sender's mail, so that undeliverable
   reports do not linger), every deferred recipient fails with its last reason. */
static void qmgr_expire(struct qmsg *m)
{
	const struct config *conf = m->q->ctx->conf;
	int64_t lifetime = m->env.sender[0] ? conf->maximal_queue_lifetime : conf->bounce_queue_lifetime;
	if (time_now_us() - m->env.arrival_us < lifetime * 1000000)
		return;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		struct qrcpt *r = &m->rcpts[i];
		if (r->state != QRCPT_DEFER)
			continue;
		/* copies: delivery_result_set clears r->last before it writes */
		struct delivery_result last = r->last;
		delivery_result_set(&r->last, i, DELIVERY_BOUNCE, last.code, r->has_result ? last.dsn : "4.4.7",
				    "message expired after %llds in the queue: %.400s", (long long)lifetime,
				    r->has_result ? last.text : "no attempt succeeded");
		memcpy(r->last.remote_mta, last.remote_mta, sizeof(last.remote_mta));
		r->has_result = true;
		r->state = QRCPT_BOUNCE;
	}
}

void qmgr_job_done(struct qmsg *m)
{
	if (--m->jobs > 0) {
		qmgr_msg_idle(m);
		return;
	}
	/* Reports read the content and record bounces: the file must be open for them. */
	if (qmgr_msg_open(m) < 0)
		log_error("%s: cannot open the queue file: %s", m->id, strerror(errno));
	qmgr_expire(m);
	qmgr_bounce(m, qmgr_done);
}

int qmgr_msg_open(struct qmsg *m)
{
	if (m->fd < 0)
		m->fd = open(m->path, O_RDWR | O_CLOEXEC);
	return m->fd < 0 ? -1 : 0;
}

void qmgr_msg_idle(struct qmsg *m)
{
	if (m->running == 0 && m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
}

static struct qmsg *qmgr_load(struct qmgr *q, const char *id)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));
	m->q = q;
	m->fd = -1;
	memcpy(m->id, id, sizeof(m->id));
	char path[4096];
	spool_path(q->ctx->spool, "active", id, path, sizeof(path));
	m->path = xstrdup(path);
	const char *why = "wrong ID";
	errno = 0;
	if (qfile_load(m->path, &m->env, &m->content_off, &m->content_size, &why) < 0 ||
	    strcmp(m->env.id, id) != 0) {
		/* Out of descriptors or memory is our trouble, not the file's: it waits for a scan. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
			log_error("%s: cannot read the queue file now: %s", id, strerror(errno));
		else
			spool_quarantine(q->ctx->spool, "active", id, why);
		queue_envelope_clear(&m->env);
		free(m->path);
		free(m);
		return NULL;
	}
	m->rcpts = xcalloc(m->env.nrcpts, sizeof(*m->rcpts));
	for (size_t i = 0; i < m->env.nrcpts; i++)
		m->rcpts[i].state = m->env.rcpts[i].state == QFILE_RCPT_QUEUED ? QRCPT_PENDING : QRCPT_FINAL;
	return m;
}

static void qmgr_activate(struct qmgr *q, const char *id, const char *from)
{
	char src[4096];
	if (strcmp(from, "active") != 0) {
		spool_path(q->ctx->spool, from, id, src, sizeof(src));
		char dst[4096];
		spool_path(q->ctx->spool, "active", id, dst, sizeof(dst));
		if (rename(src, dst) < 0) {
			if (errno != ENOENT)
				log_error("%s: cannot move %s to active/: %s", id, src, strerror(errno));
			return;
		}
	}
	struct qmsg *m = qmgr_load(q, id);
	if (m == NULL)
		return;
	if (strcmp(from, "deferred") == 0 || strcmp(from, "active") == 0) {
		m->deferlog = true;
		qmgr_deferlog_read(m);
	}
	m->next = q->msgs;
	if (q->msgs != NULL)
		q->msgs->prev = m;
	q->msgs = m;
	q->nmsgs++;
	m->jobs = 1; /* held while the jobs are queued, so that none can finish the message early */
	qmgr_sched_add(q, m);
	qmgr_job_done(m);
}

static void qmgr_admit(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	unsigned limit = (unsigned)q->ctx->conf->qmgr_message_active_limit;
	char id[QUEUE_ID_LEN + 1];
	const char *from;
	while (!q->stopping && q->nmsgs < limit && qmgr_idlist_pop(&q->waiting, id, &from)) {
		if (strcmp(from, "deferred") == 0)
			q->waiting_deferred--;
		qmgr_activate(q, id, from);
	}
	qmgr_sched_run(q);
}

static void qmgr_scan_dir(struct qmgr *q, const char *queue, char hash, bool due_only, time_t now)
{
	char dir[4096], path[4096];
	snprintf(dir, sizeof(dir), "%s/%s/%c", spool_root(q->ctx->spool), queue, hash);
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!queue_id_valid(de->d_name))
			continue;
		struct stat st;
		if (due_only && (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
				 stat(path, &st) < 0 || st.st_mtime > now))
			continue;
		qmgr_list(q, de->d_name, queue);
	}
	closedir(d);
}

/* Reads a queue directory's names (only names: the messages stay on disk until admitted). */
static void qmgr_scan(struct qmgr *q, const char *queue, bool due_only)
{
	time_t now = time(NULL);
	for (int h = 0; qmgr_hash_chars[h] != '\0'; h++)
		qmgr_scan_dir(q, queue, qmgr_hash_chars[h], due_only, now);
	qmgr_kick(q);
}

static void qmgr_scan_timer(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	/* Deferred mail still waiting from the last scan would only be listed twice. */
	if (q->waiting_deferred == 0 && !q->ctx->conf->delivery_paused)
		qmgr_scan(q, "deferred", true);
}

/* Whatever arrived while delivery was paused sits in incoming/ unlisted. */
static void qmgr_scan_all(struct qmgr *q)
{
	remover_wait(q->remover); /* active/ must not list what is delivered and going away */
	qmgr_scan(q, "active", false);
	qmgr_scan(q, SPOOL_INCOMING, false);
	qmgr_scan(q, "deferred", true);
}

void qmgr_reload(struct qmgr *q, bool was_paused)
{
	struct timeval tv = { .tv_sec = q->ctx->conf->queue_run_delay };
	event_add(q->scan_timer, &tv);
	if (was_paused && !q->ctx->conf->delivery_paused) {
		log_info("delivery resumed");
		qmgr_scan_all(q);
	}
}

void qmgr_flush(struct qmgr *q)
{
	if (q->waiting_deferred == 0 && !q->ctx->conf->delivery_paused)
		qmgr_scan(q, "deferred", false);
}

struct qmgr *qmgr_new(const struct smtp_context *ctx, struct smtp_client *client)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));
	q->ctx = ctx;
	q->client = client;
	q->remover = remover_new();
	q->admit_ev = event_new(ctx->base, -1, 0, qmgr_admit, q);
	q->scan_timer = event_new(ctx->base, -1, EV_PERSIST, qmgr_scan_timer, q);
	struct timeval tv = { .tv_sec = ctx->conf->queue_run_delay };
	event_add(q->scan_timer, &tv);
	/* Whatever was active when the last run ended goes first: it is the oldest work. */
	if (!ctx->conf->delivery_paused)
		qmgr_scan_all(q);
	log_info("queue manager: %zu messages to deliver now%s", q->waiting.len,
		 ctx->conf->delivery_paused ? " (delivery paused)" : "");
	return q;
}

void qmgr_stop(struct qmgr *q)
{
	q->stopping = true;
}

void qmgr_free(struct qmgr **qp)
{
	struct qmgr *q = *qp;
	if (q == NULL)
		return;
	q->stopping = true;
	event_free(q->admit_ev);
	event_free(q->scan_timer);
	/* Messages still active stay in active/ and are taken up again at the next start. */
	while (q->msgs != NULL)
		qmgr_msg_unlink(q->msgs);
	qmgr_sched_free(q);
	remover_free(&q->remover);
	free(q->waiting.ids);
	free(q->waiting.from);
	xfree(qp);
}
