#ifndef POSTERN_ADDRESS_H
#define POSTERN_ADDRESS_H
#include <stdbool.h>

#include "util/protolimits.h"

/* RFC 5321 envelope paths and mailboxes (and RFC 6531 UTF-8 ones). */

enum address_opts {
	ADDRESS_ALLOW_NULL = 1 << 0,       /* "<>" is accepted (MAIL FROM) */
	ADDRESS_ALLOW_POSTMASTER = 1 << 1, /* "<postmaster>" without a domain (RCPT TO, 4.5.1) */
	ADDRESS_ALLOW_UTF8 = 1 << 2,       /* UTF-8 in local part and domain (SMTPUTF8 in effect) */
};

enum address_flags {
	ADDRESS_NULL = 1 << 0,       /* the null path "<>" */
	ADDRESS_POSTMASTER = 1 << 1, /* bare "postmaster", domain empty */
	ADDRESS_UTF8 = 1 << 2,       /* contains non-ASCII */
	ADDRESS_LITERAL = 1 << 3,    /* the domain is an address literal [..] */
	ADDRESS_ROUTE = 1 << 4,      /* a source route "@a,@b:" was given (and dropped) */
};

struct address {
	/* Local part in canonical form: a dot-string as given, or a quoted-string re-quoted
	   minimally (quotes kept only when needed, only '"' and '\\' escaped). */
	char local[PROTO_LOCAL_PART_MAX * 2 + 3];
	/* Domain lower-cased (ASCII letters only), or the address literal as given; "" for the
	   null path and bare postmaster. */
	char domain[PROTO_DOMAIN_MAX + 1];
	/* "local@domain"; "" for the null path; "postmaster" for bare postmaster. */
	char mailbox[PROTO_LOCAL_PART_MAX * 2 + 3 + 1 + PROTO_DOMAIN_MAX + 1];
	unsigned flags;
};

/* Parses a Path "<...>" at the start of s (leading spaces not allowed). On success returns 0,
   fills addr_r and sets *end_r just past the '>' (what follows is the caller's to check).
   Returns -1 with a short English reason in *error_r (e.g. "missing '<'", "local part too
   long") on any syntax or length error; addr_r is then zeroed and *end_r left alone.
   Limits apply to the text as sent: local part 64 octets (quotes and backslashes included,
   so the canonical form fits too), domain 255, the whole path with brackets and any source
   route 256. IPv4 literals must be dotted quads without leading zeros (inet_pton). */
int address_parse_path(const char *s, unsigned opts, struct address *addr_r, const char **end_r,
		       const char **error_r);

/* Parses a whole string as a bare Mailbox "local@domain" (no angle brackets, nothing after it).
   With ADDRESS_ALLOW_NULL "" is the null path, with ADDRESS_ALLOW_POSTMASTER "postmaster" (any
   case) is bare postmaster; at most 254 octets (a path without its brackets).
   Returns 0 or -1 with *error_r, as address_parse_path. */
int address_parse_mailbox(const char *s, unsigned opts, struct address *addr_r, const char **error_r);

/* Returns true when s (len bytes) is well-formed UTF-8 without overlongs or surrogates. */
bool address_utf8_valid(const char *s, unsigned long len);

#endif
