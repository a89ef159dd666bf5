#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "postern";
static enum log_level log_min = LOG_LEVEL_INFO;
static const char *const log_names[] = { "debug", "info", "warning", "error" };

void log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_min = level;
}

int log_level_parse(const char *s, enum log_level *level_r)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* The whole line is formatted first and written with one write() so that lines from the
   loop and worker threads never interleave. */
static void log_write(enum log_level level, const char *fmt, va_list ap)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ld %s[%d]: ", (long)(tv.tv_usec / 1000),
		      log_progname, (int)getpid());
	if (level != LOG_LEVEL_INFO)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", log_names[level]);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = m < 0 ? n : (n + m >= (int)sizeof(line) - 1 ? (int)sizeof(line) - 2 : n + m);
	for (int i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
}

#define LOG_FN(name, level)                      \
	void name(const char *fmt, ...)          \
	{                                        \
		if (level < log_min)             \
			return;                  \
		va_list ap;                      \
		va_start(ap, fmt);               \
		log_write(level, fmt, ap);       \
		va_end(ap);                      \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	abort();
}
