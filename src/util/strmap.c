#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Open addressing with linear probing, kept at most half full so probe runs stay short.
   Nothing is ever removed, so there are no tombstones to handle. */

static uint64_t strmap_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	}
	return h;
}

/* Returns the slot holding key, or the empty slot where it would go. */
static struct strmap_slot *strmap_slot(const struct strmap *m, const char *key)
{
	size_t i = (size_t)strmap_hash(key) & (m->cap - 1);

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static void strmap_grow(struct strmap *m)
{
	struct strmap old = *m;

	m->cap = old.cap ? old.cap * 2 : 16;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].key != NULL)
			*strmap_slot(m, old.slots[i].key) = old.slots[i];
	}
	free(old.slots);
}

int strmap_get(const struct strmap *m, const char *key, size_t *value_r)
{
	if (m->cap == 0)
		return 0;
	const struct strmap_slot *slot = strmap_slot(m, key);
	if (slot->key == NULL)
		return 0;
	if (value_r != NULL)
		*value_r = slot->value;
	return 1;
}

int strmap_add(struct strmap *m, const char *key, size_t value, size_t *value_r)
{
	if ((m->count + 1) * 2 > m->cap)
		strmap_grow(m);
	struct strmap_slot *slot = strmap_slot(m, key);
	if (slot->key != NULL) {
		if (value_r != NULL)
			*value_r = slot->value;
		return 0;
	}
	slot->key = xstrdup(key);
	slot->value = value;
	m->count++;
	return 1;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}
