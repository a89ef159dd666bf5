#include "util/strmap.h"

#include <glib.h>

int strmap_get(const struct strmap *m, const char *key, size_t *value_r)
{
	gpointer value;
	if (m->table == NULL || !g_hash_table_lookup_extended(m->table, key, NULL, &value))
		return 0;
	if (value_r != NULL)
		*value_r = GPOINTER_TO_SIZE(value);
	return 1;
}

int strmap_add(struct strmap *m, const char *key, size_t value, size_t *value_r)
{
	if (strmap_get(m, key, value_r))
		return 0;
	if (m->table == NULL)
		m->table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_hash_table_insert(m->table, g_strdup(key), GSIZE_TO_POINTER(value));
	m->count++;
	return 1;
}

void strmap_free(struct strmap *m)
{
	if (m->table != NULL)
		g_hash_table_destroy(m->table);
	m->table = NULL;
	m->count = 0;
}
