#ifndef POSTERN_QMGR_INT_H
#define POSTERN_QMGR_INT_H
/* Private to the queue manager: qmgr.c (admission, finalising), qmgr_sched.c (destinations and
   concurrency), qmgr_bounce.c (reports). */
#include <stdbool.h>
#include <stdint.h>

#include "deliver/delivery.h"
#include "deliver/smtp_client.h"
#include "queue/qfile.h"
#include "queue/qmgr.h"

struct event;
struct remover;

enum qrcpt_state {
	QRCPT_PENDING,  /* still to deliver in this pass */
	QRCPT_INFLIGHT, /* handed to an agent */
	QRCPT_DEFER,    /* failed for now: retried in a later pass */
	QRCPT_BOUNCE,   /* failed for good: to be reported */
	QRCPT_FINAL,    /* done or bounced and recorded in the file */
};

struct qrcpt {
	enum qrcpt_state state;
	bool has_result;
	bool notify_success;         /* delivered with NOTIFY=SUCCESS past a hop without DSN */
	struct delivery_result last; /* the latest attempt's outcome */
	int64_t last_us;             /* when it happened */
};

struct qmsg {
	struct qmgr *q;
	char id[QUEUE_ID_LEN + 1];
	char *path; /* in active/ */
	int fd;
	struct queue_envelope env;
	off_t content_off;
	uint64_t content_size;
	struct qrcpt *rcpts;
	unsigned jobs;    /* deliveries not yet reported */
	unsigned running; /* of those, the ones an agent is working on: fd is open while > 0 */
	bool deferlog;    /* came from deferred/, so a defer side file may exist */
	bool warned;   /* the sender has had its delay warning (kept in the defer side file) */
	bool finishing;
	struct qmsg *prev, *next;
};

struct qdest;

/* One delivery: some recipients of one message to one next hop. */
struct qjob {
	struct qmsg *msg;
	struct qdest *dest;
	struct smtp_nexthop hop;
	struct delivery_rcpt *rcpts;
	size_t nrcpts, cap;
	struct delivery_request req;
	struct qjob *next;
};

struct qdest {
	char key[300];
	struct smtp_nexthop hop;
	struct qjob *head, *tail;
	unsigned queued, active, window, failures;
	int64_t dead_until_us;
	char reason[512];      /* why it was marked dead: its last connection failure */
	struct qdest *hnext;   /* hash chain */
	struct qdest *rnext;   /* ready ring */
	bool in_ring;
};

#define QMGR_HASH 1024

struct qmgr_idlist {
	char (*ids)[QUEUE_ID_LEN + 1];
	const char **from; /* queue each came from */
	size_t head, len, cap;
};

struct qmgr {
	const struct smtp_context *ctx;
	struct smtp_client *client;
	struct qmsg *msgs;
	unsigned nmsgs, inflight;
	struct qmgr_idlist waiting;   /* IDs ready to enter the active set */
	unsigned waiting_deferred;    /* how many of them come from deferred/ */
	struct qdest *dests[QMGR_HASH];
	struct qdest *ring, *ring_tail; /* destinations with jobs waiting, in turn */
	struct event *scan_timer, *admit_ev;
	struct remover *remover; /* delivered files go away off the loop */
	unsigned relay_rr;
	bool stopping;
};

/* qmgr_sched.c */
void qmgr_sched_add(struct qmgr *q, struct qmsg *m);
void qmgr_sched_run(struct qmgr *q);
void qmgr_sched_free(struct qmgr *q);

/* qmgr.c */
/* Opens the message's file if it is not open. Returns 0, or -1 with errno. */
int qmgr_msg_open(struct qmsg *m);
/* Closes the file while no agent needs it: a large active set must not hold a descriptor per
   message. */
void qmgr_msg_idle(struct qmsg *m);
void qmgr_job_done(struct qmsg *m);
/* Lists message id, found in queue from, for admission (counting those from deferred/). */
void qmgr_list(struct qmgr *q, const char *id, const char *from);

/* qmgr_bounce.c: reports the message's QRCPT_BOUNCE recipients (and expired ones) to its
   sender when it should, then calls done(m). */
void qmgr_bounce(struct qmsg *m, void (*done)(struct qmsg *m));

#endif
