#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H
#include <stdarg.h>
#include <stddef.h>

/* A growable byte string, always NUL-terminated after len bytes. Zero-initialised is empty. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Appends n bytes. */
void buf_append(struct buf *b, const void *data, size_t n);
/* Appends a NUL-terminated string. */
void buf_puts(struct buf *b, const char *s);
/* Appends one byte. */
void buf_putc(struct buf *b, char c);
/* Appends formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends formatted text from a va_list. */
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* Returns the contents as a C string (never NULL). */
const char *buf_str(const struct buf *b);
/* Frees the memory; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

#endif
