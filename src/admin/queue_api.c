/* The /v1/queue and /v1/health handlers (docs/api.md). They run in the daemon's loop, as the
   queue manager does, so a message cannot move between a check and the action taken on it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "conf/config.h"
#include "queue/qmgr.h"
#include "queue/qmgr_admin.h"
#include "queue/spool.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

#define ADMIN_LIST_DEFAULT 1000
#define ADMIN_LIST_MAX 100000
#define ADMIN_AGE_MAX INT64_C(100000000000) /* seconds; more is a typo */
#define ADMIN_SHAPE_BUCKETS 7

static const char *const admin_no_params[] = { NULL };
static const char admin_hash_chars[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The queues listed when none is asked for: the ones still to deliver, as mailq shows. */
static const char *const admin_live_queues[] = { SPOOL_INCOMING, "active", "deferred", "hold", NULL };

struct admin_filter {
	const char *queue; /* NULL: admin_live_queues */
	const char *sender, *recipient;
	int64_t min_age, max_age, limit, offset;
};

struct admin_entry {
	char id[QUEUE_ID_LEN + 1];
	const char *queue;
};

struct admin_entries {
	struct admin_entry *v;
	size_t n, cap;
};

void admin_health(struct admin_req *req)
{
	if (admin_params_check(req, admin_no_params) < 0)
		return;
	struct qmgr *q = req->ctx->qmgr;
	admin_reply(req, 200, json_pack("{s:s,s:s,s:i,s:b}", "status", "ok", "version", POSTERN_VERSION,
					"queue_active", q != NULL ? (int)qmgr_active(q) : 0, "delivery_paused",
					req->ctx->conf->delivery_paused));
}

/* Parses query parameter name as a decimal number in [min, max] into *v (left alone when the
   parameter is absent). Returns 0, or answers 400 and returns -1. */
static int admin_param_number(struct admin_req *req, const char *name, int64_t min, int64_t max,
			      int64_t *v)
{
	const char *s = admin_param(req, name);
	if (s == NULL)
		return 0;
	int64_t n = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9' && n <= max; p++)
		n = n * 10 + (*p - '0');
	if (p == s || *p != '\0' || n < min || n > max) {
		admin_error(req, 400, "bad_request", "%s: expected a number from %lld to %lld", name,
			    (long long)min, (long long)max);
		return -1;
	}
	*v = n;
	return 0;
}

static int admin_param_queue(struct admin_req *req, const char **queue_r)
{
	const char *s = admin_param(req, "queue");
	if (s == NULL)
		return 0;
	*queue_r = admin_queue_name(s);
	if (*queue_r != NULL)
		return 0;
	admin_error(req, 400, "bad_request",
		    "queue: expected incoming, active, deferred, hold, archive or corrupt");
	return -1;
}

static int admin_filter_parse(struct admin_req *req, struct admin_filter *f)
{
	static const char *const allowed[] = { "queue", "sender", "recipient", "min_age",
					       "max_age", "limit", "offset", NULL };
	*f = (struct admin_filter){ .min_age = -1, .max_age = -1, .limit = ADMIN_LIST_DEFAULT };
	if (admin_params_check(req, allowed) < 0 || admin_param_queue(req, &f->queue) < 0 ||
	    admin_param_number(req, "min_age", 0, ADMIN_AGE_MAX, &f->min_age) < 0 ||
	    admin_param_number(req, "max_age", 0, ADMIN_AGE_MAX, &f->max_age) < 0 ||
	    admin_param_number(req, "limit", 0, ADMIN_LIST_MAX, &f->limit) < 0 ||
	    admin_param_number(req, "offset", 0, INT32_MAX, &f->offset) < 0)
		return -1;
	f->sender = admin_param(req, "sender");
	f->recipient = admin_param(req, "recipient");
	return 0;
}

/* Only names are read here; envelopes are read one at a time while filtering. */
static void admin_scan(const struct spool *spool, const char *queue, struct admin_entries *out)
{
	char dir[4096];
	for (const char *h = admin_hash_chars; *h != '\0'; h++) {
		snprintf(dir, sizeof(dir), "%s/%s/%c", spool_root(spool), queue, *h);
		DIR *d = opendir(dir);
		if (d == NULL)
			continue;
		for (struct dirent *de; (de = readdir(d)) != NULL;) {
			if (!queue_id_valid(de->d_name))
				continue;
			if (out->n == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 256;
				out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
			}
			memcpy(out->v[out->n].id, de->d_name, sizeof(out->v[0].id)); /* valid: 15 + NUL */
			out->v[out->n++].queue = queue;
		}
		closedir(d);
	}
}

static int admin_entry_cmp(const void *a, const void *b)
{
	const struct admin_entry *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c != 0 ? c : strcmp(x->queue, y->queue);
}

/* "<>" stands for the null sender, which no substring could select. */
static bool admin_match_sender(const char *want, const char *sender)
{
	if (strcmp(want, "<>") == 0)
		return sender[0] == '\0';
	return strcasestr(sender, want) != NULL;
}

static bool admin_match(const struct admin_filter *f, const struct admin_msg *m, int64_t now_us)
{
	if (!m->loaded) /* unreadable: nothing to filter on */
		return f->sender == NULL && f->recipient == NULL && f->min_age < 0 && f->max_age < 0;
	int64_t age = (now_us - m->env.arrival_us) / 1000000;
	if ((f->min_age >= 0 && age < f->min_age) || (f->max_age >= 0 && age > f->max_age))
		return false;
	if (f->sender != NULL && !admin_match_sender(f->sender, m->env.sender))
		return false;
	if (f->recipient == NULL)
		return true;
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (strcasestr(m->env.rcpts[i].address, f->recipient) != NULL)
			return true;
	}
	return false;
}

/* Reads every queue asked for; the entries come sorted by ID, which is arrival order. */
static void admin_collect(const struct spool *spool, const char *queue, struct admin_entries *e)
{
	if (queue != NULL) {
		admin_scan(spool, queue, e);
	} else {
		for (int i = 0; admin_live_queues[i] != NULL; i++)
			admin_scan(spool, admin_live_queues[i], e);
	}
	if (e->n > 1)
		qsort(e->v, e->n, sizeof(*e->v), admin_entry_cmp);
}

void admin_queue_list(struct admin_req *req)
{
	struct admin_filter f;
	if (admin_filter_parse(req, &f) < 0)
		return;
	struct admin_entries e = { 0 };
	admin_collect(req->ctx->spool, f.queue, &e);
	int64_t now = time_now_us(), total = 0;
	json_t *list = json_array();
	for (size_t i = 0; i < e.n; i++) {
		struct admin_msg m;
		if (admin_msg_at(req->ctx->spool, e.v[i].queue, e.v[i].id, &m) < 0)
			continue;
		if (admin_msg_load(&m) < 0 && m.gone)
			continue;
		if (admin_match(&f, &m, now) && total++ >= f.offset && (int64_t)json_array_size(list) < f.limit)
			json_array_append_new(list, admin_msg_json(req->ctx->spool, &m, now));
		admin_msg_clear(&m);
	}
	free(e.v);
	admin_reply(req, 200, json_pack("{s:o,s:I}", "messages", list, "total", (json_int_t)total));
}

struct admin_shape_item {
	char *domain;
	int bucket;
};

struct admin_shape_row {
	const char *domain;
	json_int_t total, counts[ADMIN_SHAPE_BUCKETS];
};

/* Age buckets as Postfix's qshape draws them: doubling, in minutes. */
static int admin_shape_bucket(int64_t age_s)
{
	static const int64_t limits[ADMIN_SHAPE_BUCKETS - 1] = { 5, 10, 20, 40, 80, 160 };
	int b = 0;
	while (b < ADMIN_SHAPE_BUCKETS - 1 && age_s >= limits[b] * 60)
		b++;
	return b;
}

static int admin_shape_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct admin_shape_item *)a)->domain, ((const struct admin_shape_item *)b)->domain);
}

static int admin_shape_row_cmp(const void *a, const void *b)
{
	const struct admin_shape_row *x = a, *y = b;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

/* Adds one item per recipient still to deliver. */
static void admin_shape_add(const struct admin_msg *m, int64_t now_us, struct admin_shape_item **v,
			    size_t *n, size_t *cap)
{
	int bucket = admin_shape_bucket((now_us - m->env.arrival_us) / 1000000);
	for (size_t i = 0; i < m->env.nrcpts; i++) {
		if (m->env.rcpts[i].state != QFILE_RCPT_QUEUED)
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		const char *at = strrchr(m->env.rcpts[i].address, '@');
		char *d = xstrdup(at != NULL ? at + 1 : "");
		for (char *p = d; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		(*v)[(*n)++] = (struct admin_shape_item){ d, bucket };
	}
}

/* Folds the items (sorted by domain) into rows, largest first; the rows point into items. */
static struct admin_shape_row *admin_shape_rows(struct admin_shape_item *v, size_t n, size_t *nrows_r)
{
	struct admin_shape_row *rows = xcalloc(n + 1, sizeof(*rows));
	size_t nrows = 0;
	if (n > 1)
		qsort(v, n, sizeof(*v), admin_shape_item_cmp);
	for (size_t i = 0; i < n; i++) {
		if (nrows == 0 || strcmp(rows[nrows - 1].domain, v[i].domain) != 0)
			rows[nrows++].domain = v[i].domain;
		rows[nrows - 1].total++;
		rows[nrows - 1].counts[v[i].bucket]++;
	}
	if (nrows > 1)
		qsort(rows, nrows, sizeof(*rows), admin_shape_row_cmp);
	*nrows_r = nrows;
	return rows;
}

static json_t *admin_shape_json(const char *queue, struct admin_shape_row *rows, size_t nrows)
{
	static const char *const labels[ADMIN_SHAPE_BUCKETS] = { "0-5m", "5-10m", "10-20m", "20-40m",
								 "40-80m", "80-160m", "160m+" };
	json_t *buckets = json_array(), *domains = json_array(), *counts = json_array();
	json_int_t sums[ADMIN_SHAPE_BUCKETS] = { 0 }, total = 0;
	for (size_t r = 0; r < nrows; r++) {
		json_t *c = json_array();
		for (int b = 0; b < ADMIN_SHAPE_BUCKETS; b++) {
			json_array_append_new(c, json_integer(rows[r].counts[b]));
			sums[b] += rows[r].counts[b];
		}
		total += rows[r].total;
		json_array_append_new(domains, json_pack("{s:o,s:I,s:o}", "domain", admin_json_str(rows[r].domain),
							 "total", rows[r].total, "counts", c));
	}
	for (int b = 0; b < ADMIN_SHAPE_BUCKETS; b++) {
		json_array_append_new(buckets, json_string(labels[b]));
		json_array_append_new(counts, json_integer(sums[b]));
	}
	return json_pack("{s:s,s:o,s:I,s:o,s:o}", "queue", queue, "buckets", buckets, "total", total,
			 "counts", counts, "domains", domains);
}

void admin_queue_shape(struct admin_req *req)
{
	static const char *const allowed[] = { "queue", NULL };
	const char *queue = "deferred";
	if (admin_params_check(req, allowed) < 0 || admin_param_queue(req, &queue) < 0)
		return;
	struct admin_entries e = { 0 };
	admin_scan(req->ctx->spool, queue, &e);
	struct admin_shape_item *items = NULL;
	size_t n = 0, cap = 0, nrows;
	int64_t now = time_now_us();
	for (size_t i = 0; i < e.n; i++) {
		struct admin_msg m;
		if (admin_msg_at(req->ctx->spool, queue, e.v[i].id, &m) == 0 && admin_msg_load(&m) == 0)
			admin_shape_add(&m, now, &items, &n, &cap);
		admin_msg_clear(&m);
	}
	struct admin_shape_row *rows = admin_shape_rows(items, n, &nrows);
	admin_reply(req, 200, admin_shape_json(queue, rows, nrows));
	for (size_t i = 0; i < n; i++)
		free(items[i].domain);
	free(items);
	free(rows);
	free(e.v);
}

/* Finds the message named by the path's third segment. Returns 0, or answers 400/404 and
   returns -1. A malformed ID is "not found" and is not echoed: it may hold any bytes. */
static int admin_find(struct admin_req *req, struct admin_msg *m)
{
	if (admin_params_check(req, admin_no_params) < 0)
		return -1;
	if (admin_msg_find(req->ctx->spool, req->seg[2], m))
		return 0;
	if (queue_id_valid(req->seg[2]))
		admin_error(req, 404, "not_found", "no such message: %s", req->seg[2]);
	else
		admin_error(req, 404, "not_found", "no such message (malformed queue ID)");
	return -1;
}

void admin_queue_show(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) < 0)
		return;
	admin_msg_load(&m);
	json_t *j = admin_msg_json(req->ctx->spool, &m, time_now_us());
	if (m.loaded) {
		bool truncated;
		json_object_set_new(j, "headers", admin_msg_headers(&m, &truncated));
		json_object_set_new(j, "headers_truncated", json_boolean(truncated));
		json_object_set_new(j, "envelope", json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b}",
			"origin", admin_json_str(m.env.origin), "client_addr", admin_json_str(m.env.client_addr),
			"helo", admin_json_str(m.env.helo), "proto", admin_json_str(m.env.proto),
			"envid", admin_json_str(m.env.envid), "ret", admin_json_str(m.env.ret),
			"body", admin_json_str(m.env.body), "smtputf8", m.env.smtputf8));
	}
	admin_msg_clear(&m);
	admin_reply(req, 200, j);
}

/* A message in active/ belongs to the queue manager until it finishes with it. */
static bool admin_busy(struct admin_req *req, const struct admin_msg *m)
{
	if (strcmp(m->queue, "active") != 0 && !qmgr_admin_is_active(req->ctx->qmgr, m->id))
		return false;
	admin_error(req, 409, "conflict", "message is being delivered; try again");
	return true;
}

/* Answers 409 unless m is in one of the queues a and b (b may be NULL). Returns 0 when it is. */
static int admin_require(struct admin_req *req, const struct admin_msg *m, const char *a, const char *b,
			 const char *action)
{
	if (admin_busy(req, m))
		return -1;
	if (strcmp(m->queue, a) == 0 || (b != NULL && strcmp(m->queue, b) == 0))
		return 0;
	admin_error(req, 409, "conflict", "message is in %s/; only %s%s%s mail can be %s", m->queue, a,
		    b != NULL ? " or " : "", b != NULL ? b : "", action);
	return -1;
}

/* rename() within the spool: the message is in exactly one queue at every instant. */
static int admin_move(struct admin_req *req, struct admin_msg *m, const char *to)
{
	char dst[4096];
	if (spool_path(req->ctx->spool, to, m->id, dst, sizeof(dst)) < 0 || rename(m->path, dst) < 0) {
		admin_error(req, 500, "internal", "cannot move the message to %s/: %s", to, strerror(errno));
		return -1;
	}
	log_info("%s: moved from %s/ to %s/ by the admin API", m->id, m->queue, to);
	m->queue = to;
	return 0;
}

static void admin_reply_moved(struct admin_req *req, const struct admin_msg *m)
{
	admin_reply(req, 200, json_pack("{s:s,s:s}", "id", m->id, "queue", m->queue));
}

void admin_queue_hold(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) < 0 || admin_require(req, &m, SPOOL_INCOMING, "deferred", "held") < 0)
		return;
	if (admin_move(req, &m, "hold") == 0)
		admin_reply_moved(req, &m);
}

static void admin_to_incoming(struct admin_req *req, struct admin_msg *m)
{
	if (admin_move(req, m, SPOOL_INCOMING) < 0)
		return;
	if (req->ctx->qmgr != NULL)
		qmgr_enqueue(req->ctx->qmgr, m->id);
	admin_reply_moved(req, m);
}

void admin_queue_release(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) == 0 && admin_require(req, &m, "hold", NULL, "released") == 0)
		admin_to_incoming(req, &m);
}

/* The recipient states in the file stay: only the ones still queued are tried again. */
void admin_queue_requeue(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) == 0 && admin_require(req, &m, "deferred", "hold", "requeued") == 0)
		admin_to_incoming(req, &m);
}

/* A deferred message keeps its place in deferred/ (and its last errors): its retry time (the
   mtime) becomes now, and the queue manager is told. */
void admin_queue_flush(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) < 0 || admin_require(req, &m, "deferred", SPOOL_INCOMING, "flushed") < 0)
		return;
	struct qmgr *q = req->ctx->qmgr;
	if (strcmp(m.queue, "deferred") == 0) {
		if (utimensat(AT_FDCWD, m.path, NULL, 0) < 0) {
			admin_error(req, 500, "internal", "cannot set the retry time: %s", strerror(errno));
			return;
		}
		qmgr_admin_flush_one(q, m.id);
	} else if (q != NULL) {
		qmgr_enqueue(q, m.id);
	}
	log_info("%s: flushed by the admin API", m.id);
	admin_reply(req, 200, json_pack("{s:s,s:s,s:b}", "id", m.id, "queue", m.queue, "delivery_paused",
					req->ctx->conf->delivery_paused));
}

void admin_queue_flush_all(struct admin_req *req)
{
	if (admin_params_check(req, admin_no_params) < 0)
		return;
	if (req->ctx->qmgr != NULL)
		qmgr_flush(req->ctx->qmgr);
	log_info("deferred queue flushed by the admin API");
	admin_reply(req, 200, json_pack("{s:b,s:b}", "flushed", 1, "delivery_paused",
					req->ctx->conf->delivery_paused));
}

void admin_queue_delete(struct admin_req *req)
{
	struct admin_msg m;
	if (admin_find(req, &m) < 0 || admin_busy(req, &m))
		return;
	if (unlink(m.path) < 0) {
		admin_error(req, 500, "internal", "cannot remove the message: %s", strerror(errno));
		return;
	}
	char side[4096];
	if (spool_path(req->ctx->spool, SPOOL_DEFER, m.id, side, sizeof(side)) == 0)
		unlink(side);
	log_info("%s: removed from %s/ by the admin API", m.id, m.queue);
	admin_reply(req, 200, json_pack("{s:s,s:s,s:b}", "id", m.id, "queue", m.queue, "deleted", 1));
}
