#include "net/listener.h"

#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>

#include "util/log.h"
#include "util/xalloc.h"

struct listener {
	struct evconnlistener *ev;
	char *spec;
	char *unix_path;
	listener_cb *cb;
	void *arg;
};

static void listener_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
			    int salen, void *arg)
{
	struct listener *l = arg;
	l->cb(l->arg, fd, sa, salen);
}

static void listener_error(struct evconnlistener *ev, void *arg)
{
	struct listener *l = arg;
	/* EMFILE and friends: keep listening, the next accept may succeed once a session ends. */
	log_error("accept on %s: %s", l->spec, strerror(errno));
}

static int listener_resolve(const char *spec, struct sockaddr_storage *ss, int *len_r,
			    const char **error_r)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = colon ? (size_t)(colon - spec) : 0;
	if (colon == NULL || hl == 0 || hl >= sizeof(host)) {
		*error_r = "expected host:port";
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	char *h = host;
	if (h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	if (getaddrinfo(h, colon + 1, &hints, &ai) != 0) {
		*error_r = "cannot resolve address";
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len_r = (int)ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int listener_unix_addr(const char *path, struct sockaddr_storage *ss, int *len_r,
			      const char **error_r)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)ss;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		*error_r = "unix socket path too long";
		return -1;
	}
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, path);
	*len_r = (int)sizeof(*sun);
	unlink(path); /* a stale socket from an earlier run */
	return 0;
}

struct listener *listener_new(struct event_base *base, const char *spec, listener_cb *cb, void *arg,
			      const char **error_r)
{
	struct sockaddr_storage ss;
	int len;
	bool is_unix = strncmp(spec, "unix:", 5) == 0;
	int rc = is_unix ? listener_unix_addr(spec + 5, &ss, &len, error_r)
			 : listener_resolve(spec, &ss, &len, error_r);
	if (rc < 0)
		return NULL;
	struct listener *l = xcalloc(1, sizeof(*l));
	l->spec = xstrdup(spec);
	l->cb = cb;
	l->arg = arg;
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
	l->ev = evconnlistener_new_bind(base, listener_accept, l, flags, 128, (struct sockaddr *)&ss, len);
	if (l->ev == NULL) {
		*error_r = strerror(errno);
		listener_free(&l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->ev, listener_error);
	if (is_unix) {
		l->unix_path = xstrdup(spec + 5);
		chmod(l->unix_path, 0666);
	}
	return l;
}

const char *listener_spec(const struct listener *l)
{
	return l->spec;
}

void listener_disable(struct listener *l)
{
	evconnlistener_disable(l->ev);
}

void listener_free(struct listener **lp)
{
	struct listener *l = *lp;
	if (l == NULL)
		return;
	if (l->ev != NULL)
		evconnlistener_free(l->ev);
	if (l->unix_path != NULL) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
	free(l->spec);
	xfree(lp);
}
