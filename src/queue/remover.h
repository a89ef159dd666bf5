#ifndef POSTERN_REMOVER_H
#define POSTERN_REMOVER_H

/* Removing a delivered queue file is the dearest file-system step of a delivery: the last
   close of an unlinked file frees its inode and blocks (with the "discard" mount option, an
   I/O the caller waits for). A remover does it on a thread of its own, off the event loop.
   A crash before it gets to a file leaves the file queued, so the message is delivered again:
   at least once, as after any crash. */
struct remover;

struct remover *remover_new(void);
/* Unlinks path and closes fd (-1 for none) on the remover's thread; with a long backlog,
   at once on the caller's. */
void remover_add(struct remover *r, const char *path, int fd);
/* Returns when everything added so far is removed (before scanning a queue directory that may
   still list such files). */
void remover_wait(struct remover *r);
/* Finishes the backlog, stops the thread and frees *r (NULL allowed). */
void remover_free(struct remover **r);

#endif
