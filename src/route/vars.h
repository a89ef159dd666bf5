#ifndef POSTERN_VARS_H
#define POSTERN_VARS_H
#include <stddef.h>

#include "util/buf.h"

/* Variables for rule files: a file of "name value" lines (value = the rest of the line,
   which may use variables defined above it). In rule files "$name" and "${name}" are replaced
   by the value, "$$" by one '$'; a '$' followed by anything else stays, so regular
   expressions keep their anchors and rewrite rules their $1..$9. */

#define VARS_MAX 10000    /* variables in one file */
#define VARS_NAME_MAX 64  /* bytes of a name: a letter or '_', then letters, digits, '_' */

struct vars;

/* Returns a new empty set of variables. */
struct vars *vars_new(void);

/* Defines name as value (both copied). Returns 0, or -1 with *error_r (static text) when the
   name is malformed or already defined, or the set is full. */
int vars_set(struct vars *vars, const char *name, const char *value, const char **error_r);

/* Returns the value of the variable named by len bytes at name, or NULL when vars is NULL or
   the variable is not defined. */
const char *vars_get(const struct vars *vars, const char *name, size_t len);

/* Returns the number of variables defined (0 for NULL). */
size_t vars_count(const struct vars *vars);

/* Appends in (len bytes) to out with the variables of vars (NULL: none) substituted, without
   letting out grow past max bytes. Returns 0, or -1 with *error_r set to a newly allocated
   message (caller frees) for an undefined variable, a malformed "${" or a result too long. */
int vars_expand(const struct vars *vars, const char *in, size_t len, size_t max, struct buf *out,
		char **error_r);

/* Parses text (len bytes) as the variables file name, with the syntax of rule files. Returns 0
   with *vars_r set, or -1 with *errors_r as rulefile_parse. */
int vars_parse(const char *name, const char *text, size_t len, struct vars **vars_r,
	       char **errors_r);

/* Reads and parses the variables file path. Returns 0 or -1, as vars_parse. */
int vars_load(const char *path, struct vars **vars_r, char **errors_r);

/* Frees *vars (NULL allowed) and sets it to NULL. */
void vars_free(struct vars **vars);

#endif
