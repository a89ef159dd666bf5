#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H
#include <stdbool.h>

struct smtp_context;
struct smtp_client;

/* The queue manager (DESIGN.md 1, 3): moves messages incoming -> active -> done | deferred
   (| archive), keeps a bounded active set in memory, hands each recipient's delivery to an agent
   through per-destination queues with slow-start concurrency, records per-recipient results in
   the queue file, retries with backoff, expires old mail and returns failures to their senders
   as RFC 3464 reports. */

struct qmgr;

/* Starts the queue manager: recovers active/ and incoming/ and schedules deferred scans. */
struct qmgr *qmgr_new(const struct smtp_context *ctx, struct smtp_client *client);
/* Tells the queue manager that message id is now in incoming/. */
void qmgr_enqueue(struct qmgr *q, const char *id);
/* Applies a reloaded configuration (queue_run_delay, delivery_paused: when delivery resumes,
   what waits on disk is listed again). */
void qmgr_reload(struct qmgr *q, bool was_paused);
/* Schedules every deferred message for delivery now (flush). */
void qmgr_flush(struct qmgr *q);
/* Returns the number of deliveries in progress (0 for a NULL q). */
unsigned qmgr_inflight(const struct qmgr *q);
/* Returns the number of messages in the active set. */
unsigned qmgr_active(const struct qmgr *q);
/* Stops starting deliveries and admitting messages (the first step of a shutdown). */
void qmgr_stop(struct qmgr *q);
/* Stops admitting messages; in-flight deliveries finish (or are interrupted by freeing the
   agent). Frees *q once nothing is in flight (NULL allowed). */
void qmgr_free(struct qmgr **q);

#endif
