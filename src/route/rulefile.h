#ifndef POSTERN_RULEFILE_H
#define POSTERN_RULEFILE_H
#include <stddef.h>

#include "route/vars.h"

/* Rule files (transport, rewrite, variables): one rule per line, fields separated by blanks,
   '#' starting a comment at the start of a line or after a blank, blank lines ignored, and
   $variables substituted before the line is split. Every bad line is reported as
   "file:line: message", and a file with any error is rejected whole. */

#define RULEFILE_LINE_MAX 4096                 /* bytes of a line, before and after $vars */
#define RULEFILE_SIZE_MAX (64 * 1024 * 1024)   /* a rule file is text; more is a mistake */
#define RULEFILE_RULES_MAX 200000              /* rules in one file */
#define RULEFILE_ERRORS_MAX 100                /* errors listed; the rest are only counted */

/* One rule line as the callback sees it; valid during the callback only. */
struct rulefile_rule {
	const char *file;
	unsigned line;
	size_t nfields;           /* at least 1 */
	const char *const *fields; /* the blank-separated words */
	const char *const *rest;   /* rest[i]: the line from fields[i] to its end (comment and
				      trailing blanks removed), for fields that hold free text */
};

/* The errors of one parse, collected for the error text. */
struct rulefile_errors;

/* Called for each rule line in file order; reports problems with rulefile_error(). */
typedef void rulefile_rule_cb(void *arg, const struct rulefile_rule *rule,
			      struct rulefile_errors *errors);

/* Records a problem with rule, reported as "file:line: message". */
void rulefile_error(struct rulefile_errors *errors, const struct rulefile_rule *rule,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses text (len bytes, NULs refused) as the rule file name, substituting vars (NULL: none
   defined) and calling cb for each rule. Returns 0 when neither the parser nor cb found a
   problem, else -1 with *errors_r set to a newly allocated text of one "name:line: message"
   line per problem in line order, lines separated by '\n' (caller frees). */
int rulefile_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		   rulefile_rule_cb *cb, void *arg, char **errors_r);

/* Reads path and parses it as rulefile_parse. Returns 0, or -1 with *errors_r set (a file
   that cannot be read gives "path: cannot read: reason"). */
int rulefile_load(const char *path, const struct vars *vars, rulefile_rule_cb *cb, void *arg,
		  char **errors_r);

#endif
