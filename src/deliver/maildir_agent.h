#ifndef POSTERN_MAILDIR_AGENT_H
#define POSTERN_MAILDIR_AGENT_H
#include "deliver/delivery.h"

/* The maildir: delivery agent (DESIGN.md 1, 2). Each recipient gets its own copy of the
   message in a Maildir: written to tmp/ under a unique name, fsynced, linked into new/ (never
   replacing a file there), then removed from tmp/; new/ is fsynced before success is reported.
   A file therefore appears in new/ complete or not at all, whenever the process dies.

   The copy starts with "Return-Path: <sender>" and "Delivered-To: recipient", followed by
   the message with CRLF line ends turned into LF. The name in new/ is
   "SECONDS.M<usec>P<pid>Q<counter>.<host>,S=<size>", host with '/' and ':' written as
   "\057" and "\072".

   Results (code, dsn, text):
     done    250 2.0.0 "delivered to maildir"
     defer     0 4.2.2 "mailbox full: ..."    ENOSPC, EDQUOT or EFBIG (quota, file size limit)
     defer     0 4.3.0 "<what> <path>: ..."   any other error: permissions, missing or
                                              read-only file system, I/O, unreadable queue file
     bounce    0 5.3.5 "..."                  maildir path not absolute (configuration error)
     bounce    0 5.1.3 "..."                  sender or recipient with a line break in it
   Deferring on permissions and missing directories is deliberate: an operator can fix them,
   and the queue bounces at expiry if nobody does. */

struct event_base;

#define MAILDIR_AGENT_THREADS_MAX 4
#define MAILDIR_AGENT_QUEUE_MAX 256 /* requests waiting for a worker */

struct maildir_agent;

/* Delivers req's message for rcpt into the Maildir at maildir (created with mode 0700 when
   missing), blocking; hostname names this host in the file name (NULL: gethostname()).
   Fills *res_r with rcpt->index; returns 0 when delivered, -1 otherwise. Thread-safe. */
int maildir_deliver_one(const char *maildir, const struct delivery_request *req,
			const struct delivery_rcpt *rcpt, const char *hostname,
			struct delivery_result *res_r);
/* Fills *r as the result of failing with errno err while doing what ("write", ...) on
   path, following the table above. */
void maildir_result_errno(struct delivery_result *r, size_t index, int err, const char *what,
			  const char *path);

/* Starts an agent with threads worker threads (1..MAILDIR_AGENT_THREADS_MAX); hostname as
   for maildir_deliver_one. The base must have been created after evthread_use_pthreads().
   Returns the agent (never NULL). */
struct maildir_agent *maildir_agent_new(struct event_base *base, const char *hostname,
					unsigned threads);
/* Queues the delivery of req to each of its recipients into maildir; cb(arg, results, n)
   follows on the loop thread, never before this returns, with one result per recipient in
   request order. Everything in req is copied except req->fd, which must stay open (and the
   file unchanged) until cb has run. When the queue is full, every recipient is deferred
   4.3.0 at once (still through cb). */
void maildir_agent_deliver(struct maildir_agent *a, const char *maildir,
			   const struct delivery_request *req, delivery_done_cb *cb, void *arg);
/* Returns the number of requests whose cb has not run yet. */
unsigned maildir_agent_pending(const struct maildir_agent *a);
/* Stops the agent: queued requests are cancelled, a running one stops after its current
   recipient; recipients not delivered are deferred 4.3.0. Every outstanding cb has run when
   it returns. Frees *a (NULL allowed) and sets it to NULL. Not to be called from a cb. */
void maildir_agent_free(struct maildir_agent **a);

#endif
