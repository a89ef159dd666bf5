#ifndef POSTERN_KEYTAB_H
#define POSTERN_KEYTAB_H
#include <stddef.h>

/* A table from byte-string keys, compared ASCII case-insensitively, to a size_t value (a
   strmap, util/strmap.h, of lower-cased copies). The first value added for a key stays, which
   is what first-match-wins rule lists need. */

struct keytab;

/* Returns a new empty table. */
struct keytab *keytab_new(void);

/* Adds key (len bytes) with value unless the key is present. Returns 1 added, 0 present. */
int keytab_add(struct keytab *t, const char *key, size_t len, size_t value);

/* Looks key (len bytes) up. Returns 1 with *value_r set, or 0 when absent. */
int keytab_find(const struct keytab *t, const char *key, size_t len, size_t *value_r);

/* Frees *t (NULL allowed) and sets it to NULL. */
void keytab_free(struct keytab **t);

#endif
