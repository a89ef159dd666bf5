#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

/* One line per event, "QUEUEID: key=value, ..." where a message is concerned. */
enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the lowest level written and the program name shown in each line. */
void log_init(const char *progname, enum log_level level);
/* Parses "debug", "info", "warn" or "error"; returns 0, or -1 when unknown. */
int log_level_parse(const char *s, enum log_level *level_r);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Startup, configuration or environment failure: logs and exits with status 1. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A broken invariant: logs and aborts. */
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
