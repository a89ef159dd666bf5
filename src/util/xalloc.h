#ifndef POSTERN_XALLOC_H
#define POSTERN_XALLOC_H
#include <stddef.h>

/* Allocation helpers: every one aborts the process on allocation failure, never returns NULL. */
void *xmalloc(size_t size);
/* Returns zeroed memory for n elements of size bytes. */
void *xcalloc(size_t n, size_t size);
/* Returns p resized to size bytes. */
void *xrealloc(void *p, size_t size);
/* Returns a copy of s. */
char *xstrdup(const char *s);
/* Returns a NUL-terminated copy of the first n bytes of s. */
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *p (NULL allowed) and sets it to NULL. */
#define xfree(p) do { free(*(p)); *(p) = NULL; } while (0)

#endif
