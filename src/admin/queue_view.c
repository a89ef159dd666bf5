/* Reading queued messages for the admin API: where a message is, its envelope, the last
   errors of its deferred recipients, its header fields; all as JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "queue/deferlog.h"
#include "queue/spool.h"
#include "smtp/command.h"
#include "util/xalloc.h"

/* active/ last: a message found nowhere else is checked there at the end. */
const char *const admin_queues[] = { SPOOL_INCOMING, "deferred", "hold", "archive", SPOOL_CORRUPT,
				     "active", NULL };

const char *admin_queue_name(const char *name)
{
	for (int i = 0; admin_queues[i] != NULL; i++) {
		if (strcmp(admin_queues[i], name) == 0)
			return admin_queues[i];
	}
	return NULL;
}

int admin_msg_at(const struct spool *spool, const char *queue, const char *id, struct admin_msg *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->queue = queue;
	return spool_path(spool, queue, id, m->path, sizeof(m->path));
}

int admin_msg_find(const struct spool *spool, const char *id, struct admin_msg *m)
{
	if (!queue_id_valid(id))
		return 0;
	for (int i = 0; admin_queues[i] != NULL; i++) {
		struct stat st;
		if (admin_msg_at(spool, admin_queues[i], id, m) == 0 && stat(m->path, &st) == 0) {
			m->file_size = st.st_size;
			return 1;
		}
	}
	return 0;
}

int admin_msg_load(struct admin_msg *m)
{
	struct stat st;
	if (stat(m->path, &st) < 0) {
		m->gone = true;
		m->why = strerror(errno);
		return -1;
	}
	m->file_size = st.st_size;
	if (qfile_load(m->path, &m->env, &m->content_off, &m->content_size, &m->why) < 0)
		return -1;
	m->loaded = true;
	return 0;
}

void admin_msg_clear(struct admin_msg *m)
{
	if (m->loaded)
		queue_envelope_clear(&m->env);
	m->loaded = false;
}

json_t *admin_json_text(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);
	if (j != NULL)
		return j;
	char *out = xmalloc(len * 3 + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x80) {
			out[n++] = s[i];
		} else {
			memcpy(out + n, "\xef\xbf\xbd", 3);
			n += 3;
		}
	}
	j = json_stringn(out, n);
	free(out);
	return j;
}

json_t *admin_json_str(const char *s)
{
	return s != NULL ? admin_json_text(s, strlen(s)) : json_null();
}

static json_t *admin_json_time(int64_t us)
{
	char text[32];
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(text);
}

static const char *admin_rcpt_state(char state)
{
	switch (state) {
	case QFILE_RCPT_QUEUED: return "queued";
	case QFILE_RCPT_DONE: return "done";
	case QFILE_RCPT_BOUNCED: return "bounced";
	}
	return "unknown";
}

/* NOTIFY as in RCPT: [] when the client gave none (the default applies). */
static json_t *admin_notify_json(unsigned notify)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ SMTP_NOTIFY_NEVER, "never" },
		{ SMTP_NOTIFY_SUCCESS, "success" },
		{ SMTP_NOTIFY_FAILURE, "failure" },
		{ SMTP_NOTIFY_DELAY, "delay" },
	};
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (notify & names[i].bit)
			json_array_append_new(a, json_string(names[i].name));
	}
	return a;
}

static json_t *admin_rcpts_json(const struct queue_envelope *env)
{
	json_t *a = json_array();
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		json_array_append_new(a, json_pack("{s:o,s:s,s:o,s:o}", "address", admin_json_str(r->address),
						   "state", admin_rcpt_state(r->state), "notify",
						   admin_notify_json(r->notify), "orcpt", admin_json_str(r->orcpt)));
	}
	return a;
}

/* One "INDEX DSN CODE TIME REMOTE TEXT" line of the defer side file (written by the queue
   manager), or NULL when it is not one. */
static json_t *admin_defer_line(const struct queue_envelope *env, const char *line)
{
	struct deferlog_entry e;
	if (deferlog_parse(line, &e) < 0 || e.index >= env->nrcpts)
		return NULL;
	return json_pack("{s:o,s:I,s:o,s:i,s:o,s:o,s:o}", "recipient", admin_json_str(env->rcpts[e.index].address),
			 "index", (json_int_t)e.index, "dsn", admin_json_str(e.dsn), "code", e.code, "time",
			 admin_json_time(e.when_us), "remote", e.remote[0] ? admin_json_str(e.remote) : json_null(),
			 "text", admin_json_text(e.text, strlen(e.text)));
}

/* Returns the last errors, or NULL when there is no side file (never deferred). */
static json_t *admin_defer_json(const struct spool *spool, const struct admin_msg *m)
{
	char path[4096], line[2048];
	if (spool_path(spool, SPOOL_DEFER, m->id, path, sizeof(path)) < 0)
		return NULL;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	json_t *a = json_array();
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *e = admin_defer_line(&m->env, line);
		if (e != NULL)
			json_array_append_new(a, e);
	}
	fclose(f);
	return a;
}

json_t *admin_msg_json(const struct spool *spool, const struct admin_msg *m, int64_t now_us)
{
	if (!m->loaded)
		return json_pack("{s:s,s:s,s:I,s:o}", "id", m->id, "queue", m->queue, "size",
				 (json_int_t)m->file_size, "error", admin_json_str(m->why));
	int64_t age = (now_us - m->env.arrival_us) / 1000000;
	json_t *j = json_pack("{s:s,s:s,s:o,s:I,s:o,s:I,s:o}", "id", m->id, "queue", m->queue, "arrival",
			      admin_json_time(m->env.arrival_us), "age", (json_int_t)(age > 0 ? age : 0),
			      "sender", admin_json_str(m->env.sender), "size", (json_int_t)m->content_size,
			      "recipients", admin_rcpts_json(&m->env));
	json_t *errors = admin_defer_json(spool, m);
	if (errors != NULL)
		json_object_set_new(j, "last_errors", errors);
	return j;
}

/* Adds the field at line (len bytes, CRLFs of folded lines included) to a; a line without a
   colon is not a field and is left out. */
static void admin_header_add(json_t *a, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	if (colon == NULL)
		return;
	const char *v = colon + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	char *value = xmalloc((size_t)(end - v) + 1);
	size_t n = 0;
	for (; v < end; v++) {
		if (*v != '\r' && *v != '\n') /* unfolding: only the line breaks go */
			value[n++] = *v;
	}
	json_array_append_new(a, json_pack("{s:o,s:o}", "name", admin_json_text(line, (size_t)(colon - line)),
					   "value", admin_json_text(value, n)));
	free(value);
}

/* Splits the header block buf[0..len) into fields; a field ends at a line break that is not
   followed by white space. *ended_r tells whether the blank line was seen. */
static void admin_header_parse(json_t *a, const char *buf, size_t len, bool *ended_r)
{
	size_t start = 0, i = 0;
	*ended_r = false;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		if (nl == NULL)
			break;
		size_t next = (size_t)(nl - buf) + 1;
		if (next - i <= 2 && (buf[i] == '\r' || buf[i] == '\n')) { /* the blank line */
			if (i > start)
				admin_header_add(a, buf + start, i - start);
			*ended_r = true;
			return;
		}
		if (i > start && buf[i] != ' ' && buf[i] != '\t') {
			admin_header_add(a, buf + start, i - start);
			start = i;
		}
		i = next;
	}
	if (i > start) /* complete lines only: a partial one was cut by the read limit */
		admin_header_add(a, buf + start, i - start);
}

json_t *admin_msg_headers(const struct admin_msg *m, bool *truncated_r)
{
	json_t *a = json_array();
	size_t want = m->content_size < ADMIN_HEADERS_MAX ? (size_t)m->content_size : ADMIN_HEADERS_MAX;
	char *buf = xmalloc(want + 1);
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? pread(fd, buf, want, m->content_off) : -1;
	if (fd >= 0)
		close(fd);
	bool ended = false;
	if (got > 0)
		admin_header_parse(a, buf, (size_t)got, &ended);
	*truncated_r = !ended && m->content_size > want;
	free(buf);
	return a;
}
