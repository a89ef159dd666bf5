#ifndef POSTERN_PICKUP_H
#define POSTERN_PICKUP_H

struct smtp_context;

/* Maildrop pickup: moves what "postern sendmail" left in maildrop/ into incoming/ through
   cleanup (as a local submission), keeping its queue ID so that a crash between the commit and
   the removal of the maildrop file can never queue a message twice. */

struct pickup;

/* Scans maildrop/ now and then every conf->pickup_interval seconds. */
struct pickup *pickup_new(const struct smtp_context *ctx);
/* Stops scanning; submissions in flight finish on their own. Frees *p (NULL allowed). */
void pickup_free(struct pickup **p);

#endif
