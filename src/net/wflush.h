#ifndef POSTERN_WFLUSH_H
#define POSTERN_WFLUSH_H

struct bufferevent;

/* Write-through for a socket bufferevent. libevent writes a bufferevent's output only after
   the next turn of the loop reports the socket writable, so every reply waits a turn and costs
   two epoll_ctl calls. With a wflush, what is added to the output is written at the end of
   the current turn instead (all the replies to one batch of pipelined commands in one write);
   only what the socket does not take is left to the bufferevent's own write event. The write
   callback runs when the output drains, as libevent would run it. A TLS filter on top writes
   into the socket bufferevent's output, so attach to the socket one. */
struct wflush;

/* Attaches to bev, a socket bufferevent that is connected. */
struct wflush *wflush_new(struct bufferevent *bev);
/* Detaches and frees *w (NULL allowed); call before freeing the bufferevent. */
void wflush_free(struct wflush **w);

#endif
