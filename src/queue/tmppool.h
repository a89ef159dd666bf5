#ifndef POSTERN_TMPPOOL_H
#define POSTERN_TMPPOOL_H

/* Anonymous files (O_TMPFILE) made ahead of need by a thread of their own. Allocating an inode
   is the dearest step of queueing a message on ext4 (more so without a journal, where the
   allocator walks past recently freed inodes); with a pool, a session takes a ready file and
   the event loop does not wait for the allocation. A file that is never used vanishes when
   it is closed or the process ends. */
struct tmppool;

/* Starts keeping up to size anonymous files, made in dir/C for each character C of subdirs in
   turn (spool_open spreads those directories over the file system's allocation groups).
   Returns NULL, with errno, when the file system has no O_TMPFILE. */
struct tmppool *tmppool_new(const char *dir, const char *subdirs, unsigned size);
/* Returns a ready descriptor (O_WRONLY), or -1 when none is ready. */
int tmppool_take(struct tmppool *p);
/* Stops the thread, closes what is left, frees *p (NULL allowed). */
void tmppool_free(struct tmppool **p);

#endif
