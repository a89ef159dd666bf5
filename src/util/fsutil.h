#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H
#include <stddef.h>
#include <sys/types.h>

/* Creates path and its missing parents with mode. Returns 0, or -1 with errno. */
int fs_mkdir_p(const char *path, mode_t mode);
/* Writes all n bytes, retrying short writes and EINTR. Returns 0, or -1 with errno. */
int fs_write_all(int fd, const void *data, size_t n);
/* Reads up to n bytes at offset, retrying short reads. Returns the bytes read, or -1. */
ssize_t fs_pread_all(int fd, void *data, size_t n, off_t offset);
struct buf;
/* Appends the whole file at path to text, refusing (EFBIG) one larger than max bytes.
   Returns 0, or -1 with errno. */
int fs_read_file(const char *path, size_t max, struct buf *text);
/* fsyncs the directory at path so that renames into it are durable. Returns 0 or -1. */
int fs_fsync_dir(const char *path);

#endif
