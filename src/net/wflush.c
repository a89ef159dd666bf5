#include "net/wflush.h"

#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "util/xalloc.h"

struct wflush {
	struct bufferevent *bev;
	struct event *ev;
	struct evbuffer_cb_entry *cb;
};

/* libevent keeps the start of a socket bufferevent's output frozen outside its own write
   callback; it is thawed just for this write, as libevent does. */
static void wflush_run(evutil_socket_t fd, short what, void *arg)
{
	struct wflush *w = arg;
	struct evbuffer *out = bufferevent_get_output(w->bev);
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(w->bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0) {
		/* A full socket or an error: libevent's write event finishes or reports it. */
		bufferevent_enable(w->bev, EV_WRITE);
		return;
	}
	bufferevent_disable(w->bev, EV_WRITE);
	bufferevent_trigger(w->bev, EV_WRITE, 0);
}

static void wflush_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct wflush *w = arg;
	if (info->n_added > 0)
		event_active(w->ev, EV_WRITE, 0); /* once per turn: an active event stays active */
}

struct wflush *wflush_new(struct bufferevent *bev)
{
	struct wflush *w = xcalloc(1, sizeof(*w));
	w->bev = bev;
	w->ev = event_new(bufferevent_get_base(bev), -1, 0, wflush_run, w);
	w->cb = evbuffer_add_cb(bufferevent_get_output(bev), wflush_added, w);
	bufferevent_disable(bev, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		event_active(w->ev, EV_WRITE, 0);
	return w;
}

void wflush_free(struct wflush **wp)
{
	struct wflush *w = *wp;
	if (w == NULL)
		return;
	evbuffer_remove_cb_entry(bufferevent_get_output(w->bev), w->cb);
	event_free(w->ev);
	xfree(wp);
}
