#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H
#include <stddef.h>
#include <stdint.h>

/* The spool directory (DESIGN.md 3): one directory per queue, each hashed one level deep by
   the last character of the queue ID. */

#define SPOOL_TMP "tmp"
#define SPOOL_INCOMING "incoming"
#define SPOOL_MAILDROP "maildrop"
#define SPOOL_CORRUPT "corrupt"
#define SPOOL_DEFER "defer" /* side files: the last error of deferred recipients */

/* Every queue directory, in the order recovery scans them. */
extern const char *const spool_queues[];

struct spool;

/* Opens (creating if needed) the spool below state_dir. Returns 0, or -1 with *error_r. */
int spool_open(const char *state_dir, struct spool **spool_r, const char **error_r);
/* Frees *spool (NULL allowed). */
void spool_free(struct spool **spool);
/* Returns the spool's root directory. */
const char *spool_root(const struct spool *spool);
/* Writes "ROOT/QUEUE/H/ID" into path (size len). Returns 0, or -1 when it does not fit. */
int spool_path(const struct spool *spool, const char *queue, const char *id, char *path, size_t len);
/* Writes "ROOT/QUEUE/H" (the hash directory of id) into path. Returns 0 or -1. */
int spool_dir(const struct spool *spool, const char *queue, const char *id, char *path, size_t len);
/* Keeps anonymous files ready in tmp/ on a thread (tmppool.h), for the daemon. Idempotent;
   without O_TMPFILE it does nothing. */
void spool_start_pool(struct spool *spool);
/* Makes every new file a named tmp/ID, as on a file system without O_TMPFILE (that path's
   tests). */
void spool_no_tmpfile(struct spool *spool);
/* Returns an anonymous O_WRONLY file in tmp/ (from the pool when one is ready), or -1 with
   errno (EOPNOTSUPP, EISDIR or EINVAL: the file system has no O_TMPFILE). Thread-safe. */
int spool_tmpfile(const struct spool *spool);
/* Returns the bytes available to unprivileged users on the spool's file system (at most
   0.2 s old), or -1. Not thread-safe: the loop thread's. */
int64_t spool_free_bytes(struct spool *spool);
/* Moves queue/id to corrupt/ and logs why. Returns 0 or -1. */
int spool_quarantine(const struct spool *spool, const char *queue, const char *id, const char *why);

/* Startup recovery: removes unacknowledged files from tmp/ and moves every file of the other
   queues that is torn or foreign to corrupt/, each with a log line. Returns the number of
   valid messages found, or -1 on an I/O error reading the spool. */
long spool_recover(const struct spool *spool);

#endif
