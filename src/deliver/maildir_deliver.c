#include "deliver/maildir_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MAILDIR_CHUNK 65536
#define MAILDIR_NAME_TRIES 100

/* One copy being written: where it is now and the names it goes by. */
struct maildir_copy {
	const char *maildir;
	char host[256];          /* escaped for a file name */
	char tmp_path[PATH_MAX];
	char new_path[PATH_MAX];
	uint64_t size;           /* bytes written, for ",S=" */
};

/* Two threads of one process may pick a name in the same microsecond: the counter tells them
   apart, the pid tells processes apart. */
static atomic_ulong maildir_counter;

void maildir_result_errno(struct delivery_result *r, size_t index, int err, const char *what,
			  const char *path)
{
	if (err == ENOSPC || err == EDQUOT || err == EFBIG)
		delivery_result_set(r, index, DELIVERY_DEFER, 0, "4.2.2", "mailbox full: %s %s: %s",
				    what, path, strerror(err));
	else
		delivery_result_set(r, index, DELIVERY_DEFER, 0, "4.3.0", "%s %s: %s", what, path,
				    strerror(err));
}

/* '/' would make a path and ':' starts the info part of a Maildir name. */
static void maildir_escape_host(const char *hostname, char *out, size_t n)
{
	char name[256];
	if (hostname == NULL) {
		if (gethostname(name, sizeof(name)) < 0)
			snprintf(name, sizeof(name), "localhost");
		name[sizeof(name) - 1] = '\0';
		hostname = name;
	}
	size_t o = 0;
	for (const char *p = hostname; *p != '\0' && o + 5 < n; p++) {
		if (*p == '/' || *p == ':')
			o += (size_t)snprintf(out + o, n - o, "\\%03o", (unsigned char)*p);
		else
			out[o++] = *p;
	}
	out[o] = '\0';
}

/* Returns 0, or -1 when the name does not fit. */
static int maildir_path(char *buf, const struct maildir_copy *c, const char *sub, bool sized)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned long q = atomic_fetch_add(&maildir_counter, 1);
	char size[32] = "";
	if (sized)
		snprintf(size, sizeof(size), ",S=%llu", (unsigned long long)c->size);
	int n = snprintf(buf, PATH_MAX, "%s/%s/%lld.M%ldP%ldQ%lu.%s%s", c->maildir, sub,
			 (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), q, c->host, size);
	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Creates the Maildir and its three subdirectories when missing. */
static int maildir_make_dirs(const char *maildir, struct delivery_result *r, size_t index)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	if (fs_mkdir_p(maildir, 0700) < 0) {
		maildir_result_errno(r, index, errno, "cannot create", maildir);
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", maildir, subs[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			maildir_result_errno(r, index, errno, "cannot create", path);
			return -1;
		}
	}
	return 0;
}

/* Opens a new file in tmp/; O_EXCL keeps a clash with another writer from sharing a file. */
static int maildir_open_tmp(struct maildir_copy *c)
{
	for (int i = 0; i < MAILDIR_NAME_TRIES; i++) {
		if (maildir_path(c->tmp_path, c, "tmp", false) < 0)
			return -1;
		int fd = open(c->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			      0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Writes n (> 0) bytes of buf with CRLF turned into LF. A CR ending one chunk may pair with an LF
   starting the next, so it is held back in *cr. */
static int maildir_write_lf(int fd, char *buf, size_t n, bool *cr, uint64_t *size)
{
	if (*cr && buf[0] != '\n') {
		if (fs_write_all(fd, "\r", 1) < 0)
			return -1;
		*size += 1;
	}
	*cr = false;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\r' && i + 1 == n)
			*cr = true;
		else if (!(buf[i] == '\r' && buf[i + 1] == '\n'))
			buf[o++] = buf[i];
	}
	*size += o;
	return fs_write_all(fd, buf, o);
}

/* Copies the message from the queue file. Returns 0, -1 with errno on a write error, or -2
   with errno when the queue file cannot be read. */
static int maildir_copy_body(int fd, const struct delivery_request *req, uint64_t *size)
{
	char *buf = xmalloc(MAILDIR_CHUNK);
	bool cr = false;
	int rc = 0;
	for (uint64_t done = 0; done < req->content_size && rc == 0;) {
		uint64_t left = req->content_size - done;
		size_t want = left < MAILDIR_CHUNK ? (size_t)left : MAILDIR_CHUNK;
		ssize_t got = fs_pread_all(req->fd, buf, want, req->content_off + (off_t)done);
		if (got <= 0) {
			if (got == 0)
				errno = ENODATA; /* shorter than the queue file says */
			rc = -2;
			break;
		}
		done += (uint64_t)got;
		rc = maildir_write_lf(fd, buf, (size_t)got, &cr, size);
	}
	if (rc == 0 && cr) {
		rc = fs_write_all(fd, "\r", 1);
		*size += 1;
	}
	int saved = errno;
	free(buf);
	errno = saved;
	return rc;
}

/* Writes, fsyncs and closes the copy in tmp/. Returns 0 or -1 with *r filled. */
static int maildir_write_tmp(struct maildir_copy *c, const struct delivery_request *req,
			     const struct delivery_rcpt *rcpt, struct delivery_result *r)
{
	int fd = maildir_open_tmp(c);
	if (fd < 0) {
		maildir_result_errno(r, rcpt->index, errno, "cannot create", c->tmp_path);
		return -1;
	}
	char *head = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", req->sender,
			       rcpt->address);
	c->size = strlen(head);
	int rc = fs_write_all(fd, head, c->size);
	free(head);
	if (rc == 0)
		rc = maildir_copy_body(fd, req, &c->size);
	if (rc == 0)
		rc = fsync(fd);
	int saved = errno;
	if (close(fd) < 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == -2)
		delivery_result_set(r, rcpt->index, DELIVERY_DEFER, 0, "4.3.0",
				    "cannot read queue file %s: %s", req->id, strerror(saved));
	else if (rc < 0)
		maildir_result_errno(r, rcpt->index, saved, "cannot write", c->tmp_path);
	if (rc < 0)
		unlink(c->tmp_path);
	return rc < 0 ? -1 : 0;
}

/* link() rather than rename(): it fails instead of replacing a file already in new/. */
static int maildir_link_new(struct maildir_copy *c, struct delivery_result *r, size_t index)
{
	for (int i = 0; i < MAILDIR_NAME_TRIES; i++) {
		if (maildir_path(c->new_path, c, "new", true) < 0)
			break;
		if (link(c->tmp_path, c->new_path) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	maildir_result_errno(r, index, errno, "cannot link into", c->new_path);
	return -1;
}

/* Until new/ is on disk the link may be lost; taking it back and deferring makes a
   duplicate possible but never a loss. */
static int maildir_commit(struct maildir_copy *c, struct delivery_result *r, size_t index)
{
	int rc = maildir_link_new(c, r, index);
	unlink(c->tmp_path);
	if (rc < 0)
		return -1;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/new", c->maildir);
	if (fs_fsync_dir(dir) < 0) {
		maildir_result_errno(r, index, errno, "cannot fsync", dir);
		unlink(c->new_path);
		return -1;
	}
	return 0;
}

/* A line break in an address would let it forge header fields. */
static int maildir_check_input(const char *maildir, const struct delivery_request *req,
			       const struct delivery_rcpt *rcpt, struct delivery_result *r)
{
	if (maildir[0] != '/') {
		delivery_result_set(r, rcpt->index, DELIVERY_BOUNCE, 0, "5.3.5",
				    "maildir path is not absolute: %s", maildir);
		return -1;
	}
	if (strpbrk(req->sender, "\r\n") != NULL || strpbrk(rcpt->address, "\r\n") != NULL) {
		delivery_result_set(r, rcpt->index, DELIVERY_BOUNCE, 0, "5.1.3",
				    "line break in an address");
		return -1;
	}
	return 0;
}

int maildir_deliver_one(const char *maildir, const struct delivery_request *req,
			const struct delivery_rcpt *rcpt, const char *hostname,
			struct delivery_result *res_r)
{
	if (maildir_check_input(maildir, req, rcpt, res_r) < 0 ||
	    maildir_make_dirs(maildir, res_r, rcpt->index) < 0)
		return -1;
	struct maildir_copy *c = xcalloc(1, sizeof(*c));
	c->maildir = maildir;
	maildir_escape_host(hostname, c->host, sizeof(c->host));
	int rc = maildir_write_tmp(c, req, rcpt, res_r);
	if (rc == 0)
		rc = maildir_commit(c, res_r, rcpt->index);
	if (rc == 0)
		delivery_result_set(res_r, rcpt->index, DELIVERY_DONE, 250, "2.0.0",
				    "delivered to maildir");
	free(c);
	return rc;
}
