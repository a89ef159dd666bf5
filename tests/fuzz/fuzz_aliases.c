/* libFuzzer target for the aliases-file parser (src/route/aliasfile.c) and alias expansion
   (src/route/alias.c). The input is parsed as an aliases file: every problem must name
   "fuzz:LINE:" and every entry must have a valid key and valid targets. Then a few names are
   expanded with the parsed entries as the lookup table: a result stays within its limit,
   holds valid addresses without duplicates, and a failure has a consistent code and a
   one-line text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/address.h"
#include "route/alias.h"
#include "route/aliasfile.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_RESULTS_MAX 50
#define FUZZ_NAMES 4

static void require(int cond)
{
	if (!cond)
		abort();
}

static void check_lower(const char *s)
{
	for (; *s != '\0'; s++)
		require(!(*s >= 'A' && *s <= 'Z'));
}

static void check_errors(const struct aliasfile *f, size_t size)
{
	for (size_t i = 0; i < f->nerrors; i++) {
		const char *e = f->errors[i];
		char *end;
		require(strncmp(e, "fuzz:", 5) == 0);
		unsigned long line = strtoul(e + 5, &end, 10);
		require(end > e + 5 && *end == ':' && line >= 1 && line <= size + 1);
	}
}

static void check_entries(const struct aliasfile *f)
{
	const char *error;

	for (size_t i = 0; i < f->count; i++) {
		const struct aliasfile_entry *e = &f->entries[i];
		require(alias_key_check(e->key, &error) == 0);
		check_lower(e->key);
		require(e->targets.count >= 1 && e->targets.count <= ALIASFILE_TARGETS_MAX);
		for (size_t t = 0; t < e->targets.count; t++)
			require(alias_target_check(e->targets.items[t], &error) == 0);
	}
}

/* Two final targets are the same when their texts are, domains compared without case. */
static int same_target(const struct alias_target *a, const struct alias_target *b)
{
	if (a->local || b->local)
		return a->local == b->local && strcmp(a->target, b->target) == 0;
	const char *at_a = strrchr(a->target, '@'), *at_b = strrchr(b->target, '@');
	return at_a - a->target == at_b - b->target &&
	       strncmp(a->target, b->target, (size_t)(at_a - a->target)) == 0 &&
	       strcasecmp(at_a, at_b) == 0;
}

static void check_ok(const struct alias_result *r)
{
	struct address addr;
	const char *error;

	require(r->code == 250 && r->count >= 1 && r->count <= FUZZ_RESULTS_MAX);
	for (size_t i = 0; i < r->count; i++) {
		const struct alias_target *t = &r->targets[i];
		require(t->local == alias_target_is_local(t->target) && t->key != NULL);
		if (!t->local)
			require(address_parse_mailbox(t->target, ADDRESS_ALLOW_UTF8, &addr,
						      &error) == 0);
		for (size_t j = 0; j < i; j++)
			require(!same_target(t, &r->targets[j]));
	}
}

static void check_failure(const struct alias_result *r)
{
	require(r->count == 0 && r->targets == NULL);
	require(r->text != NULL && r->text[0] != '\0' && strlen(r->text) <= ALIAS_TEXT_MAX);
	for (const char *p = r->text; *p != '\0'; p++)
		require((unsigned char)*p >= 0x20 && *p != 0x7f);
	if (r->status == ALIAS_TEMPFAIL)
		require(r->code == 451 && r->enhanced[0] == '4');
	else
		require(r->status == ALIAS_PERMFAIL && r->enhanced[0] == '5' &&
			(r->code == 550 || r->code == 553));
}

static void check_expand(struct aliasfile *f, const char *rcpt)
{
	struct alias_opts opts = {
		.delimiters = "+-", .max_depth = 5, .max_results = FUZZ_RESULTS_MAX,
	};
	struct alias_result r;

	int rc = alias_expand(rcpt, &opts, aliasfile_lookup, f, &r);
	require((rc == 0) == (r.status == ALIAS_OK));
	if (rc == 0)
		check_ok(&r);
	else
		check_failure(&r);
	alias_result_free(&r);
}

/* Expands the first names of the file, as they are and with an extension; a catch-all is
   reached through a made-up local part. */
static void check_expansions(struct aliasfile *f)
{
	for (size_t i = 0; i < f->count && i < FUZZ_NAMES; i++) {
		const char *key = f->entries[i].key;
		char *plain = xasprintf("%s%s", key[0] == '@' ? "someone" : "", key);
		const char *at = strrchr(plain, '@');
		char *ext = xasprintf("%.*s+fz%s", (int)(at - plain), plain, at);
		check_expand(f, plain);
		check_expand(f, ext);
		free(plain);
		free(ext);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aliasfile *f = NULL;

	int rc = aliasfile_parse("fuzz", (const char *)data, size, "fuzz.example", &f);
	require(f != NULL && (rc == 0) == (f->nerrors == 0));
	check_errors(f, size);
	check_entries(f);
	check_expansions(f);
	aliasfile_free(&f);
	return 0;
}
