#include "route/keytab.h"

#include <stdint.h>
#include <stdlib.h>

#include "util/xalloc.h"

/* Open addressing with linear probing; the table is kept at most half full, so probes stay
   short and a lookup of an absent key always finds an empty slot. */

#define KEYTAB_INITIAL 16

struct keytab_slot {
	const char *key; /* NULL: empty */
	size_t len;
	uint64_t hash;
	size_t value;
};

struct keytab {
	struct keytab_slot *slots;
	size_t size; /* a power of two */
	size_t count;
};

static unsigned char keytab_fold(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* FNV-1a over the folded bytes, so that keys differing only in case collide on purpose. */
static uint64_t keytab_hash(const char *key, size_t len)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++) {
		h ^= keytab_fold((unsigned char)key[i]);
		h *= UINT64_C(1099511628211);
	}
	return h;
}

static int keytab_equal(const struct keytab_slot *s, const char *key, size_t len, uint64_t hash)
{
	if (s->hash != hash || s->len != len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (keytab_fold((unsigned char)s->key[i]) != keytab_fold((unsigned char)key[i]))
			return 0;
	return 1;
}

static struct keytab_slot *keytab_probe(const struct keytab *t, const char *key, size_t len,
					uint64_t hash)
{
	size_t mask = t->size - 1;

	for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
		struct keytab_slot *s = &t->slots[i];
		if (s->key == NULL || keytab_equal(s, key, len, hash))
			return s;
	}
}

struct keytab *keytab_new(void)
{
	struct keytab *t = xcalloc(1, sizeof(*t));

	t->size = KEYTAB_INITIAL;
	t->slots = xcalloc(t->size, sizeof(*t->slots));
	return t;
}

static void keytab_grow(struct keytab *t)
{
	struct keytab_slot *old = t->slots;
	size_t oldsize = t->size;

	t->size *= 2;
	t->slots = xcalloc(t->size, sizeof(*t->slots));
	for (size_t i = 0; i < oldsize; i++)
		if (old[i].key != NULL)
			*keytab_probe(t, old[i].key, old[i].len, old[i].hash) = old[i];
	free(old);
}

int keytab_add(struct keytab *t, const char *key, size_t len, size_t value)
{
	uint64_t hash = keytab_hash(key, len);
	struct keytab_slot *s;

	if ((t->count + 1) * 2 > t->size)
		keytab_grow(t);
	s = keytab_probe(t, key, len, hash);
	if (s->key != NULL)
		return 0;
	*s = (struct keytab_slot){ .key = key, .len = len, .hash = hash, .value = value };
	t->count++;
	return 1;
}

int keytab_find(const struct keytab *t, const char *key, size_t len, size_t *value_r)
{
	const struct keytab_slot *s = keytab_probe(t, key, len, keytab_hash(key, len));

	if (s->key == NULL)
		return 0;
	*value_r = s->value;
	return 1;
}

void keytab_free(struct keytab **t)
{
	if (*t == NULL)
		return;
	free((*t)->slots);
	xfree(t);
}
