#ifndef POSTERN_STRMAP_H
#define POSTERN_STRMAP_H
#include <stddef.h>

/* A map from strings (copied in) to size_t values, for sets and indexes that hostile input
   could make large, where a linear search would go quadratic: GLib's hash table (GLib comes
   with GMime) behind a small typed interface. Zero-initialised is empty. Keys are compared byte
   for byte: callers fold case first when they need to. */
struct _GHashTable;

struct strmap {
	struct _GHashTable *table; /* made on the first add */
	size_t count;              /* keys held */
};

/* Returns 1 and sets *value_r (when not NULL) when key is present, 0 when it is not. */
int strmap_get(const struct strmap *m, const char *key, size_t *value_r);
/* Adds a copy of key with value unless key is present. Returns 1 when added, 0 when key was
   already there (its value is kept, and copied to *value_r when not NULL). */
int strmap_add(struct strmap *m, const char *key, size_t value, size_t *value_r);
/* Frees the map's memory; the map is empty and reusable afterwards. */
void strmap_free(struct strmap *m);

#endif
