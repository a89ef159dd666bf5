#ifndef POSTERN_QMGR_ADMIN_H
#define POSTERN_QMGR_ADMIN_H
#include <stdbool.h>

struct qmgr;

/* What the admin API asks of the queue manager beyond qmgr.h. */

/* Returns true when message id is in the active set now (false for a NULL q). */
bool qmgr_admin_is_active(const struct qmgr *q, const char *id);
/* Lists the deferred message id for admission now, retry time or not; does nothing while
   delivery is paused or the manager stops (the file's mtime decides at the next scan). */
void qmgr_admin_flush_one(struct qmgr *q, const char *id);

#endif
