#ifndef POSTERN_PIPE_AGENT_H
#define POSTERN_PIPE_AGENT_H
#include <stddef.h>

#include "deliver/delivery.h"

struct event_base;

/* The pipe / MDA delivery agent: runs a program once per recipient (fork + execve, never a
   shell) with the message on its stdin and the envelope in its environment, and judges the
   delivery by its exit status, sysexits(3) style, as Postfix's pipe(8) does. */

struct pipe_agent_options {
	int timeout;             /* seconds a command may run; 0: 1000 (Postfix's command_time_limit) */
	size_t output_limit;     /* bytes of stdout plus stderr a command may write; 0: 65536 */
	const char *user;        /* run as this user when we are root; NULL or "": do not change */
	const char *group;       /* its group; NULL or "": the user's primary group */
	const char *directory;   /* working directory of the command; NULL or "": "/" */
	const char *const *env;  /* extra "NAME=value" entries, NULL-terminated, or NULL */
};

struct pipe_agent;

/* Returns an agent whose children are watched on base; the options are copied. */
struct pipe_agent *pipe_agent_new(struct event_base *base, const struct pipe_agent_options *opts);
/* Runs argv (argv[0] an absolute path, NULL-terminated; copied) once for each recipient of req,
   one after the other; cb runs exactly once on the loop (never inside this call) with one
   result per recipient in request order. req and its strings must stay valid until then. */
void pipe_agent_deliver(struct pipe_agent *a, char *const argv[], const struct delivery_request *req,
			delivery_done_cb *cb, void *arg);
/* Kills running commands (SIGKILL to their process groups) and frees *a; every unfinished
   recipient is reported deferred first, the callbacks running inside this call. */
void pipe_agent_free(struct pipe_agent **a);

#endif
