#ifndef POSTERN_ALIAS_STORE_H
#define POSTERN_ALIAS_STORE_H

#include "route/alias.h"

/* An alias_lookup_fn over the store's aliases table: ctx is a struct store *. Returns 1 with
   the targets, 0 when key has no alias, -1 with *error_r when the store cannot answer. */
int alias_store_lookup(void *ctx, const char *key, struct alias_targets *targets_r,
		       const char **error_r);

#endif
