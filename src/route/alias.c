#include "route/alias.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/address.h"
#include "util/buf.h"
#include "util/strmap.h"
#include "util/xalloc.h"

/* Room for a dedupe key: a canonical mailbox. */
#define ALIAS_KEY_SIZE sizeof(((struct address *)0)->mailbox)

struct alias_node;

/* One expansion: the caller's parameters with defaults applied, the result being built, and
   the addresses on the chain from the recipient down to the one being expanded. */
struct alias_expander {
	const char *delimiters;
	unsigned max_depth;
	unsigned max_results;
	alias_lookup_fn *lookup;
	void *ctx;
	struct alias_result *result;
	struct strmap finals;   /* dedupe keys of the final targets so far */
	struct strmap expanded; /* addresses looked up already: once is enough */
	const struct alias_node *chain[ALIAS_DEPTH_MAX + 1];
	unsigned depth;
};

static const char *const alias_local_prefixes[] = {
	"pipe:", "maildir:", "mda:", "webhook:", "discard:",
	"error:", "hold:", "vacation:", "mask:", "bounce:",
};

/* ---- target lists ---- */

void alias_targets_add(struct alias_targets *targets, const char *target)
{
	if (targets->count == targets->cap) {
		targets->cap = targets->cap ? targets->cap * 2 : 8;
		targets->items = xrealloc(targets->items, targets->cap * sizeof(*targets->items));
	}
	targets->items[targets->count++] = xstrdup(target);
}

void alias_targets_clear(struct alias_targets *targets)
{
	for (size_t i = 0; i < targets->count; i++)
		free(targets->items[i]);
	targets->count = 0;
}

void alias_targets_free(struct alias_targets *targets)
{
	if (targets == NULL)
		return;
	alias_targets_clear(targets);
	xfree(&targets->items);
	targets->cap = 0;
}

/* ---- validation ---- */

bool alias_target_is_local(const char *target)
{
	size_t n = sizeof(alias_local_prefixes) / sizeof(alias_local_prefixes[0]);

	for (size_t i = 0; i < n; i++) {
		const char *prefix = alias_local_prefixes[i];
		if (strncmp(target, prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

int alias_key_check(const char *key, const char **error_r)
{
	struct address addr;

	if (key[0] != '@')
		return address_parse_mailbox(key, ADDRESS_ALLOW_UTF8, &addr, error_r);
	/* A catch-all is a domain alone: check it as the domain of a mailbox. */
	char *mailbox = xasprintf("x%s", key);
	int rc = address_parse_mailbox(mailbox, ADDRESS_ALLOW_UTF8, &addr, error_r);
	free(mailbox);
	return rc;
}

int alias_target_check(const char *target, const char **error_r)
{
	struct address addr;

	if (!alias_target_is_local(target))
		return address_parse_mailbox(target, ADDRESS_ALLOW_UTF8, &addr, error_r);
	for (const unsigned char *p = (const unsigned char *)target; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			*error_r = "control character in local target";
			return -1;
		}
	}
	return 0;
}

/* ---- results ---- */

void alias_result_free(struct alias_result *result)
{
	if (result == NULL)
		return;
	for (size_t i = 0; i < result->count; i++) {
		free(result->targets[i].target);
		free(result->targets[i].key);
	}
	free(result->targets);
	free(result->text);
	memset(result, 0, sizeof(*result));
}

/* Makes text one printable line of at most ALIAS_TEXT_MAX bytes: it goes into SMTP replies
   and logs, and may hold whatever a store error message or a target contained. */
static char *alias_text_clean(const char *s)
{
	size_t len = strlen(s);
	char *text;

	if (len > ALIAS_TEXT_MAX) {
		len = ALIAS_TEXT_MAX - 3;
		/* Cut before a UTF-8 continuation byte, not inside a character. */
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
		text = xasprintf("%.*s...", (int)len, s);
	} else {
		text = xstrdup(s);
	}
	for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return text;
}

static int alias_fail(struct alias_expander *ex, enum alias_status status, int code,
		      const char *enhanced, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Records the failure in the result; returns -1, which every caller passes straight up. */
static int alias_fail(struct alias_expander *ex, enum alias_status status, int code,
		      const char *enhanced, const char *fmt, ...)
{
	struct alias_result *r = ex->result;
	struct buf b = { 0 };
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	r->status = status;
	r->code = code;
	r->enhanced = enhanced;
	free(r->text);
	r->text = alias_text_clean(buf_str(&b));
	buf_free(&b);
	return -1;
}

/* ---- addresses ---- */

/* An address met during expansion, with the form two addresses share when they are the same
   mailbox (domains compare without case, and address literals keep theirs in struct
   address). On the heap, so that deep recursion keeps small stack frames. */
struct alias_node {
	struct address addr;
	char dedupe[ALIAS_KEY_SIZE];
};

static char alias_ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Parses mailbox into a new node. Returns it, or NULL with *error_r. */
static struct alias_node *alias_node_new(const char *mailbox, const char **error_r)
{
	struct alias_node *node = xmalloc(sizeof(*node));

	if (address_parse_mailbox(mailbox, ADDRESS_ALLOW_UTF8, &node->addr, error_r) < 0) {
		free(node);
		return NULL;
	}
	size_t n = strlen(node->addr.local);
	memcpy(node->dedupe, node->addr.local, n);
	node->dedupe[n++] = '@';
	for (const char *d = node->addr.domain; *d != '\0'; d++)
		node->dedupe[n++] = alias_ascii_lower(*d);
	node->dedupe[n] = '\0';
	return node;
}

/* Returns the offset of the extension in the local part (at its first delimiter), or 0 when
   it has none: quoted local parts are never split, and the part before must not be empty. */
static size_t alias_extension_at(const struct alias_expander *ex, const struct address *addr)
{
	if (addr->local[0] == '"' || ex->delimiters[0] == '\0')
		return 0;
	size_t at = strcspn(addr->local, ex->delimiters);
	return addr->local[at] != '\0' ? at : 0;
}

/* Appends the final target (address or local) unless it is a duplicate. Returns 0, or -1
   when it would exceed the result limit. */
static int alias_add_final(struct alias_expander *ex, const char *target, const char *dedupe,
			   const char *key, bool local)
{
	struct alias_result *r = ex->result;

	if (strmap_get(&ex->finals, dedupe, NULL))
		return 0;
	if (r->count >= ex->max_results)
		return alias_fail(ex, ALIAS_PERMFAIL, 550, "5.3.0",
				  "alias expansion gives more than %u targets", ex->max_results);
	strmap_add(&ex->finals, dedupe, r->count, NULL);
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->targets = xrealloc(r->targets, r->cap * sizeof(*r->targets));
	}
	r->targets[r->count++] = (struct alias_target){
		.target = xstrdup(target), .key = xstrdup(key), .local = local,
	};
	return 0;
}

/* ---- lookups ---- */

/* Calls the lookup for key into targets. Returns 1, 0 or -1 as the callback. */
static int alias_lookup_key(struct alias_expander *ex, const char *key,
			    struct alias_targets *targets)
{
	const char *error = NULL;

	alias_targets_clear(targets);
	int rc = ex->lookup(ex->ctx, key, targets, &error);
	if (rc < 0)
		return alias_fail(ex, ALIAS_TEMPFAIL, 451, "4.3.0", "alias lookup of %s failed: %s",
				  key, error != NULL ? error : "unknown error");
	if (rc > 0 && targets->count == 0)
		return alias_fail(ex, ALIAS_TEMPFAIL, 451, "4.3.5", "alias %s has no targets", key);
	return rc > 0 ? 1 : 0;
}

/* Looks the extension-less form of node up; "a.+x" leaves "a.", which is no mailbox and so
   no key to try. Returns 1, 0 or -1 as the callback. */
static int alias_lookup_base(struct alias_expander *ex, const struct alias_node *node,
			     size_t ext, struct alias_targets *targets, char *key_r)
{
	const char *domain = node->dedupe + strlen(node->addr.local) + 1;
	const char *error;

	snprintf(key_r, ALIAS_KEY_SIZE, "%.*s@%s", (int)ext, node->addr.local, domain);
	struct alias_node *base = alias_node_new(key_r, &error);
	if (base == NULL)
		return 0;
	free(base);
	return alias_lookup_key(ex, key_r, targets);
}

/* Looks node up in the documented order, its domain lower-cased. Returns 1 with the key that
   matched in key_r and whether it left the extension unmatched in *unmatched_r, 0 for no
   alias, -1 on error. */
static int alias_lookup_node(struct alias_expander *ex, const struct alias_node *node,
			     struct alias_targets *targets, char *key_r, bool *unmatched_r)
{
	size_t ext = alias_extension_at(ex, &node->addr);
	int rc;

	*unmatched_r = false;
	strcpy(key_r, node->dedupe);
	if ((rc = alias_lookup_key(ex, key_r, targets)) != 0)
		return rc;
	*unmatched_r = ext > 0;
	if (ext > 0 && (rc = alias_lookup_base(ex, node, ext, targets, key_r)) != 0)
		return rc;
	snprintf(key_r, ALIAS_KEY_SIZE, "@%s", node->dedupe + strlen(node->addr.local) + 1);
	return alias_lookup_key(ex, key_r, targets);
}

/* ---- expansion ---- */

/* Returns target with the extension of from (at offset ext of its local part) appended when
   the result is sensible, as documented in the header; otherwise target itself. */
static struct alias_node *alias_propagate(const struct alias_expander *ex,
					  const struct address *from, size_t ext,
					  struct alias_node *target)
{
	const struct address *t = &target->addr;
	const char *error;

	if (t->local[0] == '"' || strpbrk(t->local, ex->delimiters) != NULL)
		return target;
	char *mailbox = xasprintf("%s%s@%s", t->local, from->local + ext, t->domain);
	struct alias_node *with = alias_node_new(mailbox, &error);
	free(mailbox);
	if (with == NULL)
		return target;
	free(target);
	return with;
}

/* Writes "a -> b -> ... -> last" into b: the chain being expanded, then last. */
static void alias_chain_text(const struct alias_expander *ex, const struct alias_node *last,
			     struct buf *b)
{
	for (unsigned i = 0; i < ex->depth; i++)
		buf_printf(b, "%s -> ", ex->chain[i]->addr.mailbox);
	buf_puts(b, last->addr.mailbox);
}

static int alias_fail_chain(struct alias_expander *ex, const char *what,
			    const struct alias_node *last)
{
	struct buf b = { 0 };

	alias_chain_text(ex, last, &b);
	alias_fail(ex, ALIAS_PERMFAIL, 550, "5.4.6", "%s: %s", what, buf_str(&b));
	buf_free(&b);
	return -1;
}

static int alias_expand_node(struct alias_expander *ex, const struct alias_node *node,
			     const char *origin);

/* Follows next, a target of key found for node: final, skipped, or expanded in turn. */
static int alias_follow(struct alias_expander *ex, const struct alias_node *node,
			const char *key, const struct alias_node *next)
{
	if (strcmp(next->dedupe, node->dedupe) == 0)
		return alias_add_final(ex, next->addr.mailbox, next->dedupe, key, false);
	for (unsigned i = 0; i < ex->depth; i++) {
		if (strcmp(next->dedupe, ex->chain[i]->dedupe) == 0)
			return alias_fail_chain(ex, "alias loop", next);
	}
	if (strmap_get(&ex->expanded, next->dedupe, NULL))
		return 0; /* looked up once already: its targets are in the result */
	return alias_expand_node(ex, next, key);
}

/* Handles one target of key, found for node. */
static int alias_expand_target(struct alias_expander *ex, const struct alias_node *node,
			       const char *key, bool unmatched, const char *target)
{
	const char *error;

	if (alias_target_is_local(target))
		return alias_add_final(ex, target, target, key, true);
	struct alias_node *next = alias_node_new(target, &error);
	if (next == NULL)
		return alias_fail(ex, ALIAS_TEMPFAIL, 451, "4.3.5",
				  "alias %s has a bad target %s: %s", key, target, error);
	if (unmatched)
		next = alias_propagate(ex, &node->addr, alias_extension_at(ex, &node->addr), next);
	int rc = alias_follow(ex, node, key, next);
	free(next);
	return rc;
}

/* Expands node, which origin (an alias key, or "" for the recipient) produced. */
static int alias_expand_node(struct alias_expander *ex, const struct alias_node *node,
			     const char *origin)
{
	struct alias_targets targets = { 0 };
	char key[ALIAS_KEY_SIZE];
	bool unmatched;

	strmap_add(&ex->expanded, node->dedupe, 0, NULL);
	int rc = alias_lookup_node(ex, node, &targets, key, &unmatched);
	if (rc == 0)
		rc = alias_add_final(ex, node->addr.mailbox, node->dedupe, origin, false);
	else if (rc > 0 && ex->depth >= ex->max_depth)
		rc = alias_fail_chain(ex, "alias nesting too deep", node);
	else if (rc > 0) {
		ex->chain[ex->depth++] = node;
		rc = 0;
		for (size_t i = 0; i < targets.count && rc == 0; i++)
			rc = alias_expand_target(ex, node, key, unmatched, targets.items[i]);
		ex->depth--;
	}
	alias_targets_free(&targets);
	return rc;
}

static void alias_expander_init(struct alias_expander *ex, const struct alias_opts *opts,
				alias_lookup_fn *lookup, void *ctx, struct alias_result *result)
{
	memset(ex, 0, sizeof(*ex));
	ex->delimiters = opts != NULL && opts->delimiters != NULL ? opts->delimiters : "";
	ex->max_depth = opts != NULL && opts->max_depth > 0 ? opts->max_depth : ALIAS_DEPTH_DEFAULT;
	if (ex->max_depth > ALIAS_DEPTH_MAX)
		ex->max_depth = ALIAS_DEPTH_MAX;
	ex->max_results = opts != NULL && opts->max_results > 0 ? opts->max_results
								 : ALIAS_RESULTS_DEFAULT;
	ex->lookup = lookup;
	ex->ctx = ctx;
	ex->result = result;
}

int alias_expand(const char *recipient, const struct alias_opts *opts, alias_lookup_fn *lookup,
		 void *ctx, struct alias_result *result_r)
{
	struct alias_expander ex;
	const char *error;
	int rc;

	memset(result_r, 0, sizeof(*result_r));
	alias_expander_init(&ex, opts, lookup, ctx, result_r);
	struct alias_node *rcpt = alias_node_new(recipient, &error);
	if (rcpt == NULL)
		rc = alias_fail(&ex, ALIAS_PERMFAIL, 553, "5.1.3", "bad recipient address: %s",
				error);
	else
		rc = alias_expand_node(&ex, rcpt, "");
	free(rcpt);
	strmap_free(&ex.finals);
	strmap_free(&ex.expanded);
	if (rc < 0) {
		/* A partial expansion must not be delivered to by mistake. */
		struct alias_result failed = *result_r;
		failed.text = NULL;
		alias_result_free(&failed);
		result_r->targets = NULL;
		result_r->count = result_r->cap = 0;
		return -1;
	}
	result_r->status = ALIAS_OK;
	result_r->code = 250;
	result_r->enhanced = "2.1.5";
	result_r->text = xstrdup("Ok");
	return 0;
}
