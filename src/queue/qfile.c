#include "queue/qfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/spool.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xalloc.h"

#define QFILE_BUFSIZE 65536

struct qfile {
	int fd;
	int error; /* sticky errno of the first failed write */
	char id[QUEUE_ID_LEN + 1];
	bool anonymous; /* O_TMPFILE: no name until qfile_place links it */
	char path[4096];  /* the tmp/ name, or /proc/self/fd/N for an anonymous file */
	uint64_t content_size;
	size_t buflen;
	char buf[QFILE_BUFSIZE];
};

void queue_envelope_set(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

void queue_envelope_add_rcpt(struct queue_envelope *env, const char *address, unsigned notify,
			     const char *orcpt)
{
	if (env->nrcpts == env->rcpts_cap) {
		env->rcpts_cap = env->rcpts_cap ? env->rcpts_cap * 2 : 4;
		env->rcpts = xrealloc(env->rcpts, env->rcpts_cap * sizeof(*env->rcpts));
	}
	struct queue_rcpt *r = &env->rcpts[env->nrcpts++];
	r->address = xstrdup(address);
	r->notify = notify;
	r->orcpt = orcpt != NULL && orcpt[0] != '\0' ? xstrdup(orcpt) : NULL;
	r->state = QFILE_RCPT_QUEUED;
	r->refusal = NULL;
}

void queue_envelope_refuse_last(struct queue_envelope *env, const char *refusal)
{
	if (env->nrcpts > 0)
		queue_envelope_set(&env->rcpts[env->nrcpts - 1].refusal, refusal);
}

void queue_envelope_clear(struct queue_envelope *env)
{
	char **fields[] = { &env->origin, &env->client_addr, &env->helo, &env->proto,
			    &env->sender, &env->envid, &env->ret, &env->body, &env->full_name };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		xfree(fields[i]);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i].address);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].refusal);
	}
	free(env->rcpts);
	memset(env, 0, sizeof(*env));
}

/* Envelope values come from parsers that refuse control characters; this keeps a record on
   one line even if a caller slips. */
static void qfile_put_value(struct buf *b, const char *value)
{
	for (const char *p = value; *p != '\0'; p++)
		buf_putc(b, (unsigned char)*p < 32 ? '?' : *p);
	buf_putc(b, '\n');
}

static void qfile_put_record(struct buf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	buf_printf(b, "%s ", key);
	qfile_put_value(b, value);
}

static void qfile_format_envelope(struct buf *b, const struct queue_envelope *env)
{
	buf_printf(b, "%s\nid %s\narrival %" PRId64 "\n", QFILE_MAGIC, env->id, env->arrival_us);
	qfile_put_record(b, "origin", env->origin);
	qfile_put_record(b, "client_addr", env->client_addr);
	qfile_put_record(b, "helo", env->helo);
	qfile_put_record(b, "proto", env->proto);
	qfile_put_record(b, "sender", env->sender != NULL ? env->sender : "");
	qfile_put_record(b, "envid", env->envid);
	qfile_put_record(b, "ret", env->ret);
	qfile_put_record(b, "body", env->body);
	qfile_put_record(b, "full_name", env->full_name);
	if (env->smtputf8)
		buf_puts(b, "smtputf8 1\n");
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		buf_printf(b, "rcpt %c %x %s ", r->state, r->notify, r->orcpt ? r->orcpt : "-");
		qfile_put_value(b, r->address);
		if (r->refusal != NULL) {
			buf_puts(b, "refused ");
			qfile_put_value(b, r->refusal);
		}
	}
	buf_puts(b, "content\n");
}

/* An anonymous file (O_TMPFILE in tmp/) gets its queue name only when it is complete, so
   its name and content become durable in the same sync and nothing is left to clean up
   after a crash. Filesystems without O_TMPFILE get a named tmp/ file instead. */
static int qfile_open(const struct spool *spool, struct qfile *qf)
{
	int fd = spool_tmpfile(spool);
	qf->anonymous = fd >= 0;
	if (fd >= 0)
		snprintf(qf->path, sizeof(qf->path), "/proc/self/fd/%d", fd);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	return open(qf->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

int qfile_create(const struct spool *spool, const struct queue_envelope *env, struct qfile **qf_r)
{
	struct qfile *qf = xmalloc(sizeof(*qf));
	qf->error = 0;
	qf->content_size = 0;
	qf->buflen = 0;
	memcpy(qf->id, env->id, sizeof(qf->id));
	if (spool_path(spool, SPOOL_TMP, env->id, qf->path, sizeof(qf->path)) < 0) {
		free(qf);
		errno = ENAMETOOLONG;
		return -1;
	}
	qf->fd = qfile_open(spool, qf);
	if (qf->fd < 0) {
		free(qf);
		return -1;
	}
	/* The envelope shares the write buffer with the content, so that a small message
	   reaches the file in one write. */
	struct buf b = { 0 };
	qfile_format_envelope(&b, env);
	int rc = qfile_write(qf, b.data, b.len);
	buf_free(&b);
	qf->content_size = 0;
	if (rc < 0) {
		int saved = errno;
		qfile_abort(&qf);
		errno = saved;
		return -1;
	}
	*qf_r = qf;
	return 0;
}

static int qfile_flush(struct qfile *qf)
{
	if (qf->error == 0 && qf->buflen > 0 && fs_write_all(qf->fd, qf->buf, qf->buflen) < 0)
		qf->error = errno;
	qf->buflen = 0;
	errno = qf->error;
	return qf->error ? -1 : 0;
}

int qfile_write(struct qfile *qf, const void *data, size_t n)
{
	if (n == 0)
		return qf->error ? -1 : 0;
	qf->content_size += n;
	if (qf->error != 0) {
		errno = qf->error;
		return -1;
	}
	if (qf->buflen + n > sizeof(qf->buf) && qfile_flush(qf) < 0)
		return -1;
	if (n >= sizeof(qf->buf)) {
		if (fs_write_all(qf->fd, data, n) < 0)
			qf->error = errno;
		return qf->error ? -1 : 0;
	}
	memcpy(qf->buf + qf->buflen, data, n);
	qf->buflen += n;
	return 0;
}

int qfile_error(const struct qfile *qf)
{
	return qf->error;
}

uint64_t qfile_content_size(const struct qfile *qf)
{
	return qf->content_size;
}

int qfile_finish(struct qfile *qf)
{
	char trailer[QFILE_TRAILER_LEN + 1];
	snprintf(trailer, sizeof(trailer), "\nPOSTERN-END %016" PRIx64 "\n", qf->content_size);
	uint64_t size = qf->content_size;
	if (qfile_write(qf, trailer, QFILE_TRAILER_LEN) < 0)
		return -1;
	qf->content_size = size;
	return qfile_flush(qf);
}

int qfile_fd(const struct qfile *qf)
{
	return qf->fd;
}

const char *qfile_id(const struct qfile *qf)
{
	return qf->id;
}

const char *qfile_path(const struct qfile *qf)
{
	return qf->path;
}

bool qfile_anonymous(const struct qfile *qf)
{
	return qf->anonymous;
}

/* linkat through /proc needs no privilege; AT_EMPTY_PATH is the way without /proc. */
int qfile_place(struct qfile *qf, const char *dest)
{
	if (!qf->anonymous)
		return rename(qf->path, dest);
	if (linkat(AT_FDCWD, qf->path, AT_FDCWD, dest, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return linkat(qf->fd, "", AT_FDCWD, dest, AT_EMPTY_PATH);
}

void qfile_close(struct qfile **qf)
{
	if (*qf == NULL)
		return;
	if ((*qf)->fd >= 0)
		close((*qf)->fd);
	xfree(qf);
}

void qfile_abort(struct qfile **qf)
{
	if (*qf == NULL)
		return;
	if (!(*qf)->anonymous)
		unlink((*qf)->path);
	qfile_close(qf);
}

int qfile_commit_sync(const struct spool *spool, struct qfile **qf, const char *queue)
{
	char dest[4096], dir[4096];
	const char *id = (*qf)->id;
	if (spool_path(spool, queue, id, dest, sizeof(dest)) < 0 ||
	    spool_dir(spool, queue, id, dir, sizeof(dir)) < 0) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	if (fsync((*qf)->fd) < 0 || qfile_place(*qf, dest) < 0)
		goto fail;
	if (fs_fsync_dir(dir) < 0) {
		int saved = errno;
		unlink(dest);
		qfile_close(qf);
		errno = saved;
		return -1;
	}
	qfile_close(qf);
	return 0;
fail:;
	int saved = errno;
	qfile_abort(qf);
	errno = saved;
	return -1;
}

/* "rcpt STATE NOTIFY ORCPT ADDRESS": a one-letter state, hex notify bits, the ORCPT ("-" for
   none) without spaces, and the non-empty rest as the address. off is the record's offset. */
static int qfile_parse_rcpt(struct queue_envelope *env, char *value, off_t off)
{
	if (value[0] <= ' ' || value[0] > '~' || value[1] != ' ')
		return -1;
	char state = value[0], *end;
	errno = 0;
	unsigned long notify = strtoul(value + 2, &end, 16);
	if (end == value + 2 || *end != ' ' || errno != 0 || notify > 0xF)
		return -1;
	char *orcpt = end + 1, *space = strchr(orcpt, ' ');
	if (space == NULL || space == orcpt || space[1] == '\0' || space[1] == ' ')
		return -1;
	*space = '\0';
	queue_envelope_add_rcpt(env, space + 1, (unsigned)notify, strcmp(orcpt, "-") ? orcpt : NULL);
	env->rcpts[env->nrcpts - 1].state = state;
	env->rcpts[env->nrcpts - 1].state_off = off + 5; /* after "rcpt " */
	return 0;
}

/* Parses one envelope record found at offset off. Returns 1 at "content", 0 for a record, -1
   when malformed. */
static int qfile_parse_record(struct queue_envelope *env, char *line, off_t off, const char **why_r)
{
	char *value = strchr(line, ' ');
	if (strcmp(line, "content") == 0)
		return 1;
	if (value == NULL) {
		*why_r = "malformed envelope record";
		return -1;
	}
	*value++ = '\0';
	struct { const char *key; char **field; } strs[] = {
		{ "origin", &env->origin }, { "client_addr", &env->client_addr },
		{ "helo", &env->helo }, { "proto", &env->proto }, { "sender", &env->sender },
		{ "envid", &env->envid }, { "ret", &env->ret }, { "body", &env->body },
		{ "full_name", &env->full_name },
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strcmp(line, strs[i].key) == 0) {
			queue_envelope_set(strs[i].field, value);
			return 0;
		}
	}
	if (strcmp(line, "id") == 0 && queue_id_valid(value)) {
		memcpy(env->id, value, sizeof(env->id));
		return 0;
	}
	if (strcmp(line, "arrival") == 0) {
		env->arrival_us = strtoll(value, NULL, 10);
		return 0;
	}
	if (strcmp(line, "smtputf8") == 0) {
		env->smtputf8 = true;
		return 0;
	}
	if (strcmp(line, "rcpt") == 0 && qfile_parse_rcpt(env, value, off) == 0)
		return 0;
	/* "refused CODE D.D.D text" belongs to the recipient record above it */
	if (strcmp(line, "refused") == 0 && env->nrcpts > 0 && value[0] >= '2' && value[0] <= '5' &&
	    env->rcpts[env->nrcpts - 1].refusal == NULL) {
		queue_envelope_refuse_last(env, value);
		return 0;
	}
	*why_r = "malformed envelope record";
	return -1;
}

static int qfile_read_envelope(FILE *f, struct queue_envelope *env, const char **why_r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = -1, first = 1;
	off_t off = 0;
	*why_r = "no content section";
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n') {
			*why_r = "truncated envelope";
			break;
		}
		line[n - 1] = '\0';
		if (!first && memchr(line, '\0', (size_t)n - 1) != NULL) {
			*why_r = "NUL byte in the envelope";
			rc = -1;
			break;
		}
		if (first) {
			first = 0;
			off = n;
			if ((size_t)n - 1 == strlen(QFILE_MAGIC) && strcmp(line, QFILE_MAGIC) == 0)
				continue;
			*why_r = "not a postern queue file";
			break;
		}
		rc = qfile_parse_record(env, line, off, why_r);
		if (rc != 0)
			break;
		rc = -1;
		off += n;
	}
	free(line);
	return rc == 1 ? 0 : -1;
}

/* The trailer is exactly "\nPOSTERN-END " and 16 lower-case hex digits and "\n". */
static bool qfile_trailer_parse(const char *t, uint64_t *size_r)
{
	static const char prefix[] = "\nPOSTERN-END ";
	if (memcmp(t, prefix, sizeof(prefix) - 1) != 0 || t[QFILE_TRAILER_LEN - 1] != '\n')
		return false;
	uint64_t size = 0;
	for (const char *p = t + sizeof(prefix) - 1; p < t + QFILE_TRAILER_LEN - 1; p++) {
		int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
		if (v < 0)
			return false;
		size = size << 4 | (uint64_t)v;
	}
	*size_r = size;
	return true;
}

static int qfile_check_trailer(int fd, off_t content_off, uint64_t *size_r, const char **why_r)
{
	struct stat st;
	char trailer[QFILE_TRAILER_LEN + 1];
	uint64_t size;
	if (fstat(fd, &st) < 0 || st.st_size < content_off + QFILE_TRAILER_LEN ||
	    fs_pread_all(fd, trailer, QFILE_TRAILER_LEN, st.st_size - QFILE_TRAILER_LEN) !=
		    QFILE_TRAILER_LEN) {
		*why_r = "truncated file";
		return -1;
	}
	trailer[QFILE_TRAILER_LEN] = '\0';
	if (!qfile_trailer_parse(trailer, &size) ||
	    (uint64_t)(st.st_size - content_off - QFILE_TRAILER_LEN) != size) {
		*why_r = "torn file: trailer does not match its size";
		return -1;
	}
	*size_r = size;
	return 0;
}

int qfile_load(const char *path, struct queue_envelope *env, off_t *content_off_r,
	       uint64_t *content_size_r, const char **why_r)
{
	memset(env, 0, sizeof(*env));
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		*why_r = "cannot open";
		return -1;
	}
	int rc = qfile_read_envelope(f, env, why_r);
	if (rc == 0 && (env->id[0] == '\0' || env->sender == NULL || env->nrcpts == 0)) {
		*why_r = "envelope lacks id, sender or recipients";
		rc = -1;
	}
	if (rc == 0) {
		*content_off_r = ftello(f);
		rc = qfile_check_trailer(fileno(f), *content_off_r, content_size_r, why_r);
	}
	fclose(f);
	if (rc < 0)
		queue_envelope_clear(env);
	return rc;
}

int qfile_set_rcpt_state(int fd, struct queue_rcpt *rcpt, char state)
{
	if (pwrite(fd, &state, 1, rcpt->state_off) != 1)
		return -1;
	rcpt->state = state;
	return 0;
}

int qfile_check(const char *path, const char *id, const char **why_r)
{
	struct queue_envelope env;
	off_t off;
	uint64_t size;
	if (qfile_load(path, &env, &off, &size, why_r) < 0)
		return -1;
	int rc = strcmp(env.id, id) == 0 ? 0 : -1;
	if (rc < 0)
		*why_r = "queue ID inside does not match the file name";
	queue_envelope_clear(&env);
	return rc;
}
