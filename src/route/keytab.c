#include "route/keytab.h"

#include <stdlib.h>

#include <glib.h>

#include "util/strmap.h"
#include "util/xalloc.h"

/* A strmap over ASCII-lower-cased copies of the keys. */
struct keytab {
	struct strmap map;
};

struct keytab *keytab_new(void)
{
	return xcalloc(1, sizeof(struct keytab));
}

int keytab_add(struct keytab *t, const char *key, size_t len, size_t value)
{
	char *folded = g_ascii_strdown(key, (gssize)len);
	int added = strmap_add(&t->map, folded, value, NULL);
	g_free(folded);
	return added;
}

int keytab_find(const struct keytab *t, const char *key, size_t len, size_t *value_r)
{
	char *folded = g_ascii_strdown(key, (gssize)len);
	int found = strmap_get(&t->map, folded, value_r);
	g_free(folded);
	return found;
}

void keytab_free(struct keytab **t)
{
	if (*t == NULL)
		return;
	strmap_free(&(*t)->map);
	xfree(t);
}
