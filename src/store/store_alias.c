#include "store/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/address.h"
#include "store/store_int.h"
#include "util/xalloc.h"

/* Aliases (DESIGN.md 4.2): checked and normalised here once, so that both backends store the
   same keys and the same target lists. */

/* Local targets the router understands; an argument is required where it names something. */
static const struct {
	const char *prefix;
	bool needs_arg;
} store_local_targets[] = {
	{ "pipe:", true },     { "maildir:", true }, { "mda:", false },
	{ "webhook:", true },  { "discard:", false }, { "error:", false },
	{ "vacation:", false }, { "mask:", false },   { "bounce:", false },
};

#define STORE_LOCAL_TARGETS "pipe:, maildir:, mda:, webhook:, discard:, error:, vacation:, mask:, bounce:"

static void store_ascii_lower(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 'a' - 'A');
	}
}

/* "@domain": the domain is checked by the address parser behind a placeholder local part. */
static int store_alias_catchall(const char *domain, char *key_r, char *err, size_t errlen)
{
	struct address addr;
	const char *reason = NULL;
	char probe[PROTO_DOMAIN_MAX + 3];
	if (strlen(domain) > PROTO_DOMAIN_MAX) {
		snprintf(err, errlen, "catch-all alias: domain too long");
		return -1;
	}
	snprintf(probe, sizeof(probe), "x@%s", domain);
	if (address_parse_mailbox(probe, ADDRESS_ALLOW_UTF8, &addr, &reason) < 0) {
		snprintf(err, errlen, "catch-all alias \"@%.300s\": %s", domain, reason);
		return -1;
	}
	snprintf(key_r, STORE_ALIAS_KEY_MAX, "@%s", addr.domain);
	return 0;
}

int store_alias_key_normalise(const char *key, char key_r[STORE_ALIAS_KEY_MAX], char *err,
			      size_t errlen)
{
	struct address addr;
	const char *reason = NULL;
	if (key[0] == '@')
		return store_alias_catchall(key + 1, key_r, err, errlen);
	if (address_parse_mailbox(key, ADDRESS_ALLOW_UTF8, &addr, &reason) < 0) {
		snprintf(err, errlen, "alias \"%.300s\" is not local@domain or @domain: %s", key,
			 reason);
		return -1;
	}
	snprintf(key_r, STORE_ALIAS_KEY_MAX, "%s", addr.mailbox);
	store_ascii_lower(key_r); /* lookups ignore case, as mail systems' tables do */
	return 0;
}

/* Returns the local-target prefix t starts with, or -1. */
static int store_local_target(const char *t)
{
	for (size_t i = 0; i < sizeof(store_local_targets) / sizeof(store_local_targets[0]); i++) {
		if (strncmp(t, store_local_targets[i].prefix, strlen(store_local_targets[i].prefix)) == 0)
			return (int)i;
	}
	return -1;
}

/* Targets end up in queue files and log lines, where control characters do not belong. */
static const char *store_target_text_error(const char *t)
{
	size_t len = strlen(t);
	if (len == 0)
		return "is empty";
	if (len > STORE_ALIAS_TARGET_MAX)
		return "is too long";
	if (!address_utf8_valid(t, len))
		return "is not valid UTF-8";
	for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return "contains a control character";
	}
	return NULL;
}

static int store_target_check(size_t i, const char *t, char *err, size_t errlen)
{
	struct address addr;
	const char *reason = store_target_text_error(t);
	if (reason != NULL) {
		snprintf(err, errlen, "target %zu %s", i + 1, reason);
		return -1;
	}
	int local = store_local_target(t);
	if (local >= 0) {
		if (!store_local_targets[local].needs_arg || t[strlen(store_local_targets[local].prefix)])
			return 0;
		snprintf(err, errlen, "target %zu \"%s\" needs an argument", i + 1, t);
		return -1;
	}
	if (address_parse_mailbox(t, ADDRESS_ALLOW_UTF8, &addr, &reason) == 0)
		return 0;
	snprintf(err, errlen, "target %zu \"%.300s\" is neither an address (%s) nor a local target "
		 "(" STORE_LOCAL_TARGETS ")", i + 1, t, reason);
	return -1;
}

int store_alias_targets_check(const char *const *targets, size_t n, char *err, size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "an alias needs at least one target");
		return -1;
	}
	if (n > STORE_ALIAS_TARGETS_MAX) {
		snprintf(err, errlen, "too many targets (at most %d)", STORE_ALIAS_TARGETS_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (store_target_check(i, targets[i], err, errlen) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(targets[i], targets[j]) == 0) {
				snprintf(err, errlen, "target %zu repeats target %zu", i + 1, j + 1);
				return -1;
			}
		}
	}
	return 0;
}

/* Returns the targets as a compact JSON array (free with free()). */
static char *store_targets_json(const char *const *targets, size_t n)
{
	json_t *array = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(array, json_string(targets[i]));
	char *text = json_dumps(array, JSON_COMPACT);
	json_decref(array);
	if (text == NULL)
		abort(); /* out of memory: checked UTF-8 strings always encode */
	return text;
}

int store_alias_put(struct store *s, const char *key, const char *const *targets, size_t n,
		    const char **error_r)
{
	char norm[STORE_ALIAS_KEY_MAX];
	*error_r = s->error;
	if (store_alias_key_normalise(key, norm, s->error, sizeof(s->error)) < 0 ||
	    store_alias_targets_check(targets, n, s->error, sizeof(s->error)) < 0)
		return STORE_ERROR;
	char *json = store_targets_json(targets, n);
	int rc = s->ops->alias_put(s, norm, strchr(norm, '@') + 1, json);
	free(json);
	return rc;
}

int store_alias_get(struct store *s, const char *key, struct store_alias **alias_r,
		    const char **error_r)
{
	char norm[STORE_ALIAS_KEY_MAX];
	*alias_r = NULL;
	*error_r = s->error;
	if (store_alias_key_normalise(key, norm, s->error, sizeof(s->error)) < 0)
		return STORE_ERROR;
	return s->ops->alias_get(s, norm, alias_r);
}

int store_alias_delete(struct store *s, const char *key, const char **error_r)
{
	char norm[STORE_ALIAS_KEY_MAX];
	*error_r = s->error;
	if (store_alias_key_normalise(key, norm, s->error, sizeof(s->error)) < 0)
		return STORE_ERROR;
	return s->ops->alias_delete(s, norm);
}

/* Filters compare with normalised keys: lower-cased, a domain may be given as "@domain". Strings are the caller's to free. */
static void store_query_normalise(const struct store_alias_query *q, struct store_query *out)
{
	memset(out, 0, sizeof(*out));
	out->limit = STORE_LIST_DEFAULT;
	if (q == NULL)
		return;
	if (q->after != NULL && q->after[0] != '\0') {
		char *after = xstrdup(q->after);
		store_ascii_lower(after);
		out->after = after;
	}
	if (q->prefix != NULL && q->prefix[0] != '\0') {
		char *prefix = xstrdup(q->prefix);
		store_ascii_lower(prefix);
		out->prefix = prefix;
	}
	if (q->domain != NULL && q->domain[0] != '\0') {
		char *domain = xstrdup(q->domain + (q->domain[0] == '@'));
		store_ascii_lower(domain);
		out->domain = domain;
	}
	if (q->limit != 0)
		out->limit = q->limit > STORE_LIST_MAX ? STORE_LIST_MAX : q->limit;
}

static void store_query_clear(struct store_query *q)
{
	free((char *)q->after);
	free((char *)q->prefix);
	free((char *)q->domain);
}

int store_alias_list(struct store *s, const struct store_alias_query *q,
		     struct store_alias_list **list_r, const char **error_r)
{
	struct store_query nq;
	struct store_alias_list *list = xcalloc(1, sizeof(*list));
	*list_r = NULL;
	*error_r = s->error;
	store_query_normalise(q, &nq);
	int rc = s->ops->alias_list(s, &nq, list);
	store_query_clear(&nq);
	if (rc < 0) {
		store_alias_list_free(&list);
		return rc;
	}
	/* The backend fetched one row more than asked, to tell whether another page follows. */
	if (list->n > nq.limit) {
		store_alias_clear(&list->items[--list->n]);
		list->more = true;
	}
	*list_r = list;
	return 0;
}

int store_alias_count(struct store *s, const struct store_alias_query *q, uint64_t *count_r,
		      const char **error_r)
{
	struct store_query nq;
	*count_r = 0;
	*error_r = s->error;
	store_query_normalise(q, &nq);
	int rc = s->ops->alias_count(s, &nq, count_r);
	store_query_clear(&nq);
	return rc;
}

static int store_targets_from_json(struct store_alias *a, const char *text)
{
	json_error_t jerr;
	json_t *array = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	size_t n = json_is_array(array) ? json_array_size(array) : 0;
	if (n == 0) {
		json_decref(array);
		return -1;
	}
	a->targets = xcalloc(n, sizeof(*a->targets));
	for (size_t i = 0; i < n; i++) {
		const char *t = json_string_value(json_array_get(array, i));
		if (t == NULL)
			break;
		a->targets[a->ntargets++] = xstrdup(t);
	}
	json_decref(array);
	return a->ntargets == n ? 0 : -1;
}

int store_alias_from_row(struct store *s, struct store_alias *a, const char *key,
			 const char *targets_json, int64_t created, int64_t updated)
{
	a->key = xstrdup(key);
	a->created = created;
	a->updated = updated;
	if (store_targets_from_json(a, targets_json) < 0)
		return store_fail(s, STORE_ERROR, "alias \"%.300s\": stored targets are not a "
				  "JSON array of strings", key);
	return 0;
}

struct store_alias *store_alias_list_add(struct store_alias_list *list)
{
	/* Pages are bounded (STORE_LIST_MAX + 1), so growing one by one costs little. */
	list->items = xrealloc(list->items, (list->n + 1) * sizeof(*list->items));
	memset(&list->items[list->n], 0, sizeof(list->items[0]));
	return &list->items[list->n++];
}

void store_alias_clear(struct store_alias *a)
{
	for (size_t i = 0; i < a->ntargets; i++)
		free(a->targets[i]);
	free(a->targets);
	free(a->key);
	memset(a, 0, sizeof(*a));
}

void store_alias_free(struct store_alias **ap)
{
	if (*ap == NULL)
		return;
	store_alias_clear(*ap);
	xfree(ap);
}

void store_alias_list_free(struct store_alias_list **lp)
{
	struct store_alias_list *l = *lp;
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_alias_clear(&l->items[i]);
	free(l->items);
	xfree(lp);
}
