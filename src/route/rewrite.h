#ifndef POSTERN_REWRITE_H
#define POSTERN_REWRITE_H
#include <stddef.h>

#include "route/vars.h"
#include "util/buf.h"
#include "util/protolimits.h"

/* Address rewriting: rule lines "direction  old  new" where direction is from (senders), to
   (recipients) or both; old is a domain, "*.domain" (subdomains at any depth) or "/regex/"
   ("/regex/i") matched against the address's lower-cased domain; new is the domain that
   replaces the whole domain, with $1..$9 taking a regex's captures. The first rule for the
   direction that matches wins. */

#define REWRITE_ADDRESS_MAX (PROTO_PATH_MAX - 2) /* a rewritten "local@domain" */

enum rewrite_dir {
	REWRITE_FROM = 1 << 0,
	REWRITE_TO = 1 << 1,
	REWRITE_BOTH = REWRITE_FROM | REWRITE_TO,
};

struct rewrite;

/* Reads the rewrite rules of path, with vars (NULL: none). Returns 0 with *rw_r set, or -1
   with *errors_r set to a newly allocated text of "file:line: message" lines (caller frees). */
int rewrite_load(const char *path, const struct vars *vars, struct rewrite **rw_r,
		 char **errors_r);

/* Parses text (len bytes) as if read from the file name; otherwise as rewrite_load. */
int rewrite_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		  struct rewrite **rw_r, char **errors_r);

/* Rewrites the lower-cased domain (len bytes) by the first rule of direction dir that matches
   it. Returns 1 with the new domain in out (PROTO_DOMAIN_MAX + 1 bytes), 0 when no rule
   matches, -1 when the result is not a valid domain. */
int rewrite_domain(const struct rewrite *rw, enum rewrite_dir dir, const char *domain,
		   size_t len, char *out);

/* Rewrites the domain of the envelope address in ("local@domain", not overlapping out) into out
   (outlen bytes). Returns 1 when out differs from in, 0 when it is in unchanged (the null
   sender "", no '@', no rule), -1 when the result would be invalid or longer than
   REWRITE_ADDRESS_MAX or outlen allows: out then holds in unchanged ("" if in does not fit). */
int rewrite_address(const struct rewrite *rw, enum rewrite_dir dir, const char *in, char *out,
		    size_t outlen);

/* Appends to out the value of header name with the domain of every addr-spec rewritten: From,
   Sender, Reply-To, Resent-From and Resent-Sender by the from rules, To, Cc, Bcc, Resent-To,
   Resent-Cc and Resent-Bcc by the to rules. Everything but the domains (display names,
   comments, quoted strings, groups, folding) is kept byte for byte. Returns 1 when the value
   was changed, 0 when it is appended unchanged (other headers, unparsable values, no rule). */
int rewrite_header(const struct rewrite *rw, const char *name, const char *value,
		   struct buf *out);

/* Returns the number of rules. */
size_t rewrite_count(const struct rewrite *rw);

/* Frees *rw (NULL allowed) and sets it to NULL. */
void rewrite_free(struct rewrite **rw);

#endif
