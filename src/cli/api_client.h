#ifndef POSTERN_API_CLIENT_H
#define POSTERN_API_CLIENT_H
#include <stddef.h>

#include <jansson.h>

/* A small blocking HTTP/1.1 client for the daemon's admin API on its unix socket (docs/api.md),
   for the commands that need the daemon. Messages go to standard error prefixed with who
   ("postern queue"); failures come back as sysexits statuses. */

/* An answer: the HTTP status and the parsed JSON body (json_decref it). */
struct api_reply {
	int status;
	json_t *body;
};

/* Writes the API socket named by the configuration (config NULL: cli_config_path's default)
   into out. Returns 0, or 78 (EX_CONFIG) after a message. */
int api_socket(const char *config, const char *who, char *out, size_t len);
/* Sends method target with body (JSON text, or NULL for none) and reads the answer into
   *reply. Returns 0, or an exit status after a message: 69 the daemon is not running, 77 the
   socket refuses the user, 1 a broken answer. */
int api_call(const char *socket, const char *who, const char *method, const char *target,
	     const char *body, struct api_reply *reply);
/* Prints an error reply's message; returns 1, the exit status for "the daemon refused". */
int api_error(const char *who, const struct api_reply *reply);

#endif
