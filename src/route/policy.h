#ifndef POSTERN_POLICY_H
#define POSTERN_POLICY_H
#include <stddef.h>

#include "route/nexthop.h"
#include "route/vars.h"

/* The transport policy: an ordered list of "pattern  next-hop" rules (route/pattern.h,
   route/nexthop.h) in a rule file (route/rulefile.h); the first rule that matches wins.
   Exact addresses, domains and wildcard parents are found through hash tables, so a lookup
   costs about the same with ten or ten thousand rules (regex rules are tried in order). */

struct policy_rule {
	const char *pattern;    /* as written */
	struct nexthop nexthop;
	const char *file;
	unsigned line;
};

struct policy;

/* Reads the policy file path, with vars (NULL: none) for $variables and available the
   NEXTHOP_BIT()s of the kinds this build can deliver. Returns 0 with *policy_r set, or -1 with
   *errors_r set to a newly allocated text of "file:line: message" lines (caller frees). */
int policy_load(const char *path, const struct vars *vars, unsigned available,
		struct policy **policy_r, char **errors_r);

/* Parses text (len bytes) as if read from the file name; otherwise as policy_load. */
int policy_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		 unsigned available, struct policy **policy_r, char **errors_r);

/* Returns the first rule matching address (with delimiters, NULL or "", the characters that
   start an address extension), or NULL when none does. */
const struct policy_rule *policy_match(const struct policy *policy, const char *address,
				       const char *delimiters);

/* Returns the number of rules. */
size_t policy_count(const struct policy *policy);

/* Frees *policy (NULL allowed) and sets it to NULL. */
void policy_free(struct policy **policy);

#endif
