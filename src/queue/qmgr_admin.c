/* The queue manager's answers to the admin API: is a message being delivered, deliver one
   deferred message now. Kept apart from qmgr.c; uses its structures through qmgr_int.h. */
#include "queue/qmgr_admin.h"

#include <string.h>

#include <event2/event.h>

#include "conf/config.h"
#include "queue/qmgr_int.h"
#include "smtp/server.h"

bool qmgr_admin_is_active(const struct qmgr *q, const char *id)
{
	if (q == NULL)
		return false;
	for (const struct qmsg *m = q->msgs; m != NULL; m = m->next) {
		if (strcmp(m->id, id) == 0)
			return true;
	}
	return false;
}

/* Listed as coming from deferred/ so that admission reads its defer side file (the last
   errors survive into a later report). Listing it twice is harmless: the second admission
   finds the file gone from deferred/ and skips it. */
void qmgr_admin_flush_one(struct qmgr *q, const char *id)
{
	if (q == NULL || q->stopping || q->ctx->conf->delivery_paused)
		return;
	qmgr_list(q, id, "deferred");
	event_active(q->admit_ev, EV_TIMEOUT, 0);
}
