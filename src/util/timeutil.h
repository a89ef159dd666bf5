#ifndef POSTERN_TIMEUTIL_H
#define POSTERN_TIMEUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Returns the wall-clock time in microseconds since the epoch. */
int64_t time_now_us(void);
/* Writes t as an RFC 5322 date-time in local time ("Tue, 24 Nov 2026 23:05:14 +0000").
   Returns out. */
char *time_rfc5322(time_t t, char *out, size_t len);

#endif
