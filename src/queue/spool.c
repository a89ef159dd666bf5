#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/queue_id.h"
#include "queue/tmppool.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/xalloc.h"

const char *const spool_queues[] = { SPOOL_TMP, SPOOL_MAILDROP, SPOOL_INCOMING, "active", "deferred",
				     "hold", "archive", SPOOL_CORRUPT, SPOOL_DEFER, NULL };

static const char spool_hash_chars[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

struct spool {
	char *root;
	/* spool_free_bytes' last answer: statvfs on every MAIL and DATA would cost a system call
	   per command for a figure that changes slowly. */
	int64_t free_bytes, free_checked_us;
	struct tmppool *pool;
	bool no_tmpfile;
};

#define SPOOL_POOL_SIZE 64

static void spool_tmp_dir(const struct spool *spool, char *dir, size_t len)
{
	snprintf(dir, len, "%s/" SPOOL_TMP, spool->root);
}

void spool_start_pool(struct spool *spool)
{
	char dir[4096];
	spool_tmp_dir(spool, dir, sizeof(dir));
	if (spool->pool == NULL && !spool->no_tmpfile)
		spool->pool = tmppool_new(dir, spool_hash_chars, SPOOL_POOL_SIZE);
}

void spool_no_tmpfile(struct spool *spool)
{
	spool->no_tmpfile = true;
}

int spool_tmpfile(const struct spool *spool)
{
	if (spool->no_tmpfile) {
		errno = EOPNOTSUPP;
		return -1;
	}
	int fd = spool->pool != NULL ? tmppool_take(spool->pool) : -1;
	if (fd >= 0)
		return fd;
	char dir[4096];
	spool_tmp_dir(spool, dir, sizeof(dir));
	return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
}

/* New files are made in tmp/ (tmppool.h); on ext4 a file's inode is allocated in its
   directory's group, and every subdirectory of a plain directory lands in its parent's group.
   The "top directory" flag on tmp/ makes ext4 spread tmp/'s subdirectories over the groups,
   so the inode churn of a busy queue is spread too (without a journal, ext4 walks past every
   recently freed inode of a group on each allocation). Elsewhere the flag is refused: no harm. */
static void spool_spread(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int flags;
	if (fd < 0)
		return;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_TOPDIR_FL)) {
		flags |= FS_TOPDIR_FL;
		(void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
}

static int spool_mkdirs(const char *root, const char **error_r)
{
	static char err[512];
	char path[4096];
	snprintf(path, sizeof(path), "%s/" SPOOL_TMP, root);
	if (fs_mkdir_p(path, 0750) < 0)
		goto fail;
	spool_spread(path);
	for (int q = 0; spool_queues[q] != NULL; q++) {
		for (int h = 0; spool_hash_chars[h] != '\0'; h++) {
			snprintf(path, sizeof(path), "%s/%s/%c", root, spool_queues[q], spool_hash_chars[h]);
			if (fs_mkdir_p(path, 0750) < 0)
				goto fail;
		}
	}
	return 0;
fail:
	snprintf(err, sizeof(err), "cannot create spool directory under %s: %s", root, strerror(errno));
	*error_r = err;
	return -1;
}

int spool_open(const char *state_dir, struct spool **spool_r, const char **error_r)
{
	char *root = xasprintf("%s/spool", state_dir);
	if (spool_mkdirs(root, error_r) < 0) {
		free(root);
		return -1;
	}
	struct spool *spool = xcalloc(1, sizeof(*spool));
	spool->root = root;
	*spool_r = spool;
	return 0;
}

void spool_free(struct spool **spool)
{
	if (*spool == NULL)
		return;
	tmppool_free(&(*spool)->pool);
	free((*spool)->root);
	xfree(spool);
}

const char *spool_root(const struct spool *spool)
{
	return spool->root;
}

int spool_path(const struct spool *spool, const char *queue, const char *id, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s/%c/%s", spool->root, queue, queue_id_hash(id), id);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int spool_dir(const struct spool *spool, const char *queue, const char *id, char *path, size_t len)
{
	int n = snprintf(path, len, "%s/%s/%c", spool->root, queue, queue_id_hash(id));
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int64_t spool_free_bytes(struct spool *spool)
{
	int64_t now = time_now_us();
	if (now - spool->free_checked_us < 200000 && now >= spool->free_checked_us)
		return spool->free_bytes;
	struct statvfs st;
	if (statvfs(spool->root, &st) < 0)
		return -1;
	spool->free_bytes = (int64_t)st.f_bavail * (int64_t)st.f_frsize;
	spool->free_checked_us = now;
	return spool->free_bytes;
}

int spool_quarantine(const struct spool *spool, const char *queue, const char *id, const char *why)
{
	char from[4096], to[4096];
	if (spool_path(spool, queue, id, from, sizeof(from)) < 0 ||
	    spool_path(spool, SPOOL_CORRUPT, id, to, sizeof(to)) < 0)
		return -1;
	if (rename(from, to) < 0) {
		log_error("%s: cannot move %s to corrupt/: %s", id, from, strerror(errno));
		return -1;
	}
	log_warn("%s: moved %s/ file to corrupt/: %s", id, queue, why);
	return 0;
}

/* A file whose name is not a queue ID (or sits in the wrong hash directory) is foreign:
   it is quarantined under a fresh ID so that nothing is ever lost or overwritten. */
static void spool_quarantine_foreign(const struct spool *spool, const char *path)
{
	char id[QUEUE_ID_LEN + 1], to[4096];
	queue_id_new(id);
	if (spool_path(spool, SPOOL_CORRUPT, id, to, sizeof(to)) == 0 && rename(path, to) == 0)
		log_warn("%s: moved foreign file %s to corrupt/", id, path);
	else
		log_error("cannot move foreign file %s to corrupt/: %s", path, strerror(errno));
}

static int spool_recover_file(const struct spool *spool, const char *queue, const char *hdir,
			      const char *name)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/%s", hdir, name) >= (int)sizeof(path))
		return 0;
	if (strcmp(queue, SPOOL_TMP) == 0) {
		if (unlink(path) == 0)
			log_info("removed unacknowledged %s", path);
		return 0;
	}
	if (!queue_id_valid(name) || hdir[strlen(hdir) - 1] != queue_id_hash(name)) {
		spool_quarantine_foreign(spool, path);
		return 0;
	}
	const char *why;
	if (qfile_check(path, name, &why) < 0) {
		spool_quarantine(spool, queue, name, why);
		return 0;
	}
	return 1;
}

static long spool_recover_dir(const struct spool *spool, const char *queue, char hash)
{
	char hdir[4096];
	snprintf(hdir, sizeof(hdir), "%s/%s/%c", spool->root, queue, hash);
	DIR *d = opendir(hdir);
	if (d == NULL) {
		log_error("cannot read %s: %s", hdir, strerror(errno));
		return -1;
	}
	long valid = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		valid += spool_recover_file(spool, queue, hdir, de->d_name);
	}
	closedir(d);
	return valid;
}

long spool_recover(const struct spool *spool)
{
	long total = 0;
	for (int q = 0; spool_queues[q] != NULL; q++) {
		if (strcmp(spool_queues[q], SPOOL_CORRUPT) == 0 || strcmp(spool_queues[q], SPOOL_DEFER) == 0)
			continue;
		for (int h = 0; spool_hash_chars[h] != '\0'; h++) {
			long n = spool_recover_dir(spool, spool_queues[q], spool_hash_chars[h]);
			if (n < 0)
				return -1;
			total += n;
		}
	}
	return total;
}
