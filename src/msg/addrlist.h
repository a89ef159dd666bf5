#ifndef POSTERN_ADDRLIST_H
#define POSTERN_ADDRLIST_H
#include <stddef.h>

/* RFC 5322 address lists (To, Cc, Bcc, command-line "Name <a@b>, c@d"), parsed by GMime.
   Groups are flattened into their members. */

typedef void addrlist_cb(void *arg, const char *addr_spec);

/* Calls cb for each mailbox's addr-spec in value. Returns the number of mailboxes. */
int addrlist_each(const char *value, addrlist_cb *cb, void *arg);

#endif
