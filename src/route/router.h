#ifndef POSTERN_ROUTER_H
#define POSTERN_ROUTER_H
#include <stdbool.h>
#include <stddef.h>

#include "route/policy.h"
#include "route/rewrite.h"

/* The routing rules of one configuration (DESIGN.md 4): the variables, the rewrite rules and
   the transport policy that the settings name, loaded together so that a reload takes all of
   them or none. */
struct config;
struct queue_envelope;
struct router;

/* The next-hop kinds this build delivers to; a rule naming another is a config error. */
#define ROUTER_AVAILABLE                                                                          \
	(NEXTHOP_BIT(NEXTHOP_SMTP) | NEXTHOP_BIT(NEXTHOP_MX) | NEXTHOP_BIT(NEXTHOP_LMTP_INET) |   \
	 NEXTHOP_BIT(NEXTHOP_LMTP_UNIX) | NEXTHOP_BIT(NEXTHOP_DISCARD) |                          \
	 NEXTHOP_BIT(NEXTHOP_ERROR) | NEXTHOP_BIT(NEXTHOP_HOLD))

/* Loads the files named by conf's transport_variables, rewrite_rules and transport_rules (an
   empty setting means none). Returns 0 with *router_r, or -1 with *errors_r set to newly
   allocated "file:line: message" lines (caller frees). */
int router_load(const struct config *conf, struct router **router_r, char **errors_r);
/* Returns r with one more reference: a message being written keeps the rules it started with
   across a reload. NULL allowed. */
struct router *router_ref(struct router *r);
/* Drops a reference to *r (NULL allowed), freeing it with the last, and sets *r to NULL. */
void router_free(struct router **r);
/* Rewrites an envelope address into out (outlen bytes) by the rules of dir. Returns 1 when
   out differs from in, else 0 with in copied (r NULL allowed: no rules). */
int router_rewrite(const struct router *r, enum rewrite_dir dir, const char *in, char *out,
		   size_t outlen);
/* Rewrites env's sender and recipients in place; a rewritten recipient without an ORCPT gets
   its original address as ORCPT, so that reports name what the sender wrote. Returns the
   number of addresses changed. */
size_t router_rewrite_envelope(const struct router *r, struct queue_envelope *env);
/* Returns address as a newly allocated RFC 3461 ORCPT value ("rfc822;" and the address in
   xtext), or NULL when it does not fit. */
char *router_orcpt(const char *address);
/* Returns the rewrite rules when headers are to be rewritten too, else NULL. */
const struct rewrite *router_header_rules(const struct router *r);
/* Returns the first transport rule matching address, or NULL (r NULL allowed). */
const struct policy_rule *router_match(const struct router *r, const char *address);
/* Returns true when a rule names address's route explicitly: any match but the catch-all "*",
   which must not turn the server into an open relay. */
bool router_covers(const struct router *r, const char *address);
/* Returns the first hold: rule that matches one of env's recipients, or NULL. Such a message
   is parked in hold/ at intake, whole; once released it is delivered (a hold: rule then
   counts as no rule). */
const struct policy_rule *router_hold(const struct router *r, const struct queue_envelope *env);
/* Returns the number of transport rules (0 for r NULL). */
size_t router_transport_count(const struct router *r);
/* Returns the number of rewrite rules (0 for r NULL). */
size_t router_rewrite_count(const struct router *r);
/* Returns the recipient delimiters in force ("" for none). */
const char *router_delimiters(const struct router *r);

#endif
