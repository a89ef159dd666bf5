#ifndef POSTERN_LISTENER_H
#define POSTERN_LISTENER_H
#include <sys/socket.h>

struct event_base;

/* Listening sockets: "host:port", "[v6]:port" or "unix:/path". */

struct listener;

/* Called for each accepted connection; sa is NULL-family AF_UNIX for unix sockets. */
typedef void listener_cb(void *arg, int fd, const struct sockaddr *sa, int salen);

/* Binds spec and starts accepting. Returns the listener, or NULL with *error_r. */
struct listener *listener_new(struct event_base *base, const char *spec, listener_cb *cb, void *arg,
			      const char **error_r);
/* Returns the spec the listener was made from. */
const char *listener_spec(const struct listener *l);
/* Stops accepting (the socket stays bound). */
void listener_disable(struct listener *l);
/* Closes the socket (removing a unix socket's file) and frees *l (NULL allowed). */
void listener_free(struct listener **l);

#endif
