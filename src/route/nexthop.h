#ifndef POSTERN_NEXTHOP_H
#define POSTERN_NEXTHOP_H
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/protolimits.h"

/* Next hops of the transport policy, "kind:argument":
     smtp:host,host:port,[host]:port,[2001:db8::1]:2525   relays in turn; [..] means no MX lookup
     mx: or mx:domain                                      MX delivery (to the recipient's domain)
     lmtp:inet:host:port, lmtp:unix:/path                  LMTP over TCP or a unix socket
     pipe:/abs/program args..., mda:/abs/program args...   argv; '...' and "..." quote words
     maildir:/abs/dir/                                     a Maildir
     webhook:https://host/path                             HTTP(S) POST
     discard:[text]  hold:[reason]                         drop or park the message
     error:550 5.1.1 text                                  refuse with that reply
     vacation:[arg]  mask:[arg]  bounce:[arg]              the built-in robots */

#define NEXTHOP_HOSTS_MAX 32  /* hosts of one smtp: list */
#define NEXTHOP_ARGV_MAX 64   /* words of a pipe: or mda: command */
#define NEXTHOP_UNIX_PATH_MAX 107 /* sun_path less its NUL, on Linux */
#define NEXTHOP_TEXT_MAX 400  /* error:, discard:, hold: and robot texts (fits a reply line) */

enum nexthop_kind {
	NEXTHOP_SMTP,
	NEXTHOP_MX,
	NEXTHOP_LMTP_INET,
	NEXTHOP_LMTP_UNIX,
	NEXTHOP_PIPE,
	NEXTHOP_MDA,
	NEXTHOP_MAILDIR,
	NEXTHOP_WEBHOOK,
	NEXTHOP_DISCARD,
	NEXTHOP_ERROR,
	NEXTHOP_HOLD,
	NEXTHOP_VACATION,
	NEXTHOP_MASK,
	NEXTHOP_BOUNCE,
	NEXTHOP_NKINDS
};

/* For the loader's mask of the kinds this build can deliver. */
#define NEXTHOP_BIT(kind) (1u << (kind))
#define NEXTHOP_ALL ((1u << NEXTHOP_NKINDS) - 1)

struct nexthop_host {
	char host[PROTO_DOMAIN_MAX + 1]; /* a name, an IPv4 address or an IPv6 address (no []) */
	unsigned port;                   /* 0: the default port of the protocol */
	bool bracketed;                  /* written [host]: use it as is, no MX lookup */
	bool ipv6;
};

struct nexthop {
	enum nexthop_kind kind;
	size_t nhosts;
	struct nexthop_host *hosts; /* SMTP: 1..NEXTHOP_HOSTS_MAX, MX: 0 or 1, LMTP_INET: 1 */
	size_t argc;
	char **argv;                /* PIPE, MDA: NULL-terminated, argv[0] an absolute path */
	char *path;                 /* LMTP_UNIX socket, MAILDIR directory (absolute) */
	char *url;                  /* WEBHOOK */
	unsigned code;              /* ERROR: 400..599 */
	char status[12];            /* ERROR: "5.1.1", or "" when not given */
	char *text;                 /* ERROR: the reply text (never NULL); DISCARD, HOLD and the
				       robots: the optional argument, NULL when none */
};

/* Finds the kind named before the first ':' of text ("lmtp:" gives LMTP_UNIX for "lmtp:unix:"
   and LMTP_INET otherwise). Returns 0 with *kind_r, or -1 when the kind is unknown. */
int nexthop_kind_of(const char *text, enum nexthop_kind *kind_r);

/* Returns the name of kind as written in rule files ("smtp", "lmtp", "webhook", ...). */
const char *nexthop_kind_name(enum nexthop_kind kind);

/* Parses text, a next hop and whatever follows it on the rule line (the free text of error:,
   discard:, hold:, the robots, and the arguments of pipe: and mda:). Returns 0 with *hop_r
   filled (free with nexthop_clear), or -1 with *error_r (static text) and *hop_r empty. */
int nexthop_parse(const char *text, struct nexthop *hop_r, const char **error_r);

/* Appends hop written back as rule-file text, which parses to the same next hop. */
void nexthop_format(const struct nexthop *hop, struct buf *out);

/* Frees what hop holds and zeroes it. */
void nexthop_clear(struct nexthop *hop);

#endif
