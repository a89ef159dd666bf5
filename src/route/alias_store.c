#include "route/alias_store.h"

#include "store/store.h"

int alias_store_lookup(void *ctx, const char *key, struct alias_targets *targets_r,
		       const char **error_r)
{
	struct store_alias *a = NULL;
	int rc = store_alias_get(ctx, key, &a, error_r);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	for (size_t i = 0; i < a->ntargets; i++)
		alias_targets_add(targets_r, a->targets[i]);
	store_alias_free(&a);
	return 1;
}
