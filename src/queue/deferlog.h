#ifndef POSTERN_DEFERLOG_H
#define POSTERN_DEFERLOG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The defer side file, spool/defer/H/ID: the last error of each deferred recipient, kept so that
   a report sent days later (and `postern queue list`) still says why. One line per recipient:
   "INDEX DSN CODE TIME_US REMOTE|- TEXT". */

/* A line of its own: the sender has been warned of the delay. */
#define DEFERLOG_WARNED "warned"

struct deferlog_entry {
	size_t index;
	char dsn[16];
	int code;
	int64_t when_us;
	char remote[256]; /* "" when none */
	char text[512];
};

/* Writes one entry as a line to f. */
void deferlog_write(FILE *f, const struct deferlog_entry *e);
/* Parses one line. Returns 0, or -1 when it is malformed. */
int deferlog_parse(const char *line, struct deferlog_entry *e);

#endif
