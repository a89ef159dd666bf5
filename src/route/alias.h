#ifndef POSTERN_ALIAS_H
#define POSTERN_ALIAS_H
#include <stdbool.h>
#include <stddef.h>

/* Alias expansion (DESIGN.md 4, step 2), independent of where aliases are stored: the caller
   passes a lookup callback.

   Keys are "local@domain" (the canonical mailbox of src/msg/address.h: ASCII letters of the
   domain lower-cased, the local part as given) or the catch-all "@domain". Whether local parts
   compare case-insensitively is the store's business.

   Lookup order for one address: the exact address; then, when the local part (not a quoted
   one) holds one of the recipient delimiters after its first character, the address without
   its extension, cut at the first delimiter found ("user+ext@d" -> "user@d", with "+-" also
   "user-ext@d" -> "user@d"); then the catch-all "@domain".

   A target is final when it is a local target (see alias_target_is_local) or an address
   without an alias; other addresses are expanded again. A target equal to the address being
   expanded ("a@d -> a@d, b@e") means "that mailbox itself" and is final.

   Extension propagation (as Postfix's propagate_unmatched_extensions): when an address
   matched through the extension-less key or the catch-all, its extension (from the first
   delimiter on, delimiter included) is appended to the local part of each address target:
   "user+ext@d" with "user@d -> bob@e" gives "bob+ext@e". It is not appended to a target
   whose local part already holds a delimiter or is quoted, nor when the result would not be
   a valid address (local part over 64 octets); that target is then used as it is.

   Failures, for an SMTP layer to answer RCPT with:
   - recipient not a valid address:           ALIAS_PERMFAIL 553 5.1.3
   - a target on the chain being expanded (a -> b -> a), not counting the self-reference
     above, or more than max_depth nested aliases: ALIAS_PERMFAIL 550 5.4.6, the text
     naming the chain ("alias loop: a@d -> b@e -> a@d")
   - more than max_results final targets:     ALIAS_PERMFAIL 550 5.3.0
   - lookup error:                            ALIAS_TEMPFAIL 451 4.3.0 with the error text
   - malformed data from the store (a target neither local nor an address, an alias with no
     targets):                                ALIAS_TEMPFAIL 451 4.3.5, so that mail waits
     while an operator fixes the entry. */

#define ALIAS_DEPTH_DEFAULT 10    /* nested aliases allowed by default */
#define ALIAS_DEPTH_MAX 100       /* a larger max_depth is clamped to this */
#define ALIAS_RESULTS_DEFAULT 1000
#define ALIAS_TEXT_MAX 400        /* bytes of alias_result.text, so it fits an SMTP reply */

/* A growable list of target strings. Zero-initialised is empty. */
struct alias_targets {
	char **items;
	size_t count;
	size_t cap;
};

/* Appends a copy of target. */
void alias_targets_add(struct alias_targets *targets, const char *target);
/* Empties the list (freeing its strings), keeping the array for reuse. */
void alias_targets_clear(struct alias_targets *targets);
/* Frees everything; the list is empty and reusable afterwards. NULL is allowed. */
void alias_targets_free(struct alias_targets *targets);

/* Looks key up. Returns 1 with the targets appended to targets_r (which the expander passes
   empty), 0 when there is no such alias, or -1 with *error_r (e.g. the store is down). */
typedef int alias_lookup_fn(void *ctx, const char *key, struct alias_targets *targets_r,
			    const char **error_r);

struct alias_opts {
	const char *delimiters; /* recipient delimiters, e.g. "+" or "+-"; NULL or "" for none */
	unsigned max_depth;     /* 0 for ALIAS_DEPTH_DEFAULT */
	unsigned max_results;   /* 0 for ALIAS_RESULTS_DEFAULT */
};

enum alias_status { ALIAS_OK, ALIAS_TEMPFAIL, ALIAS_PERMFAIL };

struct alias_target {
	char *target; /* a canonical mailbox, or a local target as the store gave it */
	char *key;    /* the alias key whose targets held it; "" when the recipient had no alias */
	bool local;   /* a local target (pipe:, maildir:, ...), not an address */
};

struct alias_result {
	enum alias_status status;
	int code;             /* SMTP reply code: 250, 451, 550 or 553 */
	const char *enhanced; /* enhanced status code (static), e.g. "2.1.5", "5.4.6" */
	char *text;           /* one line, no control characters, at most ALIAS_TEXT_MAX bytes */
	struct alias_target *targets; /* final targets in order of first appearance, without
					 duplicates (domains compared ignoring ASCII case);
					 none unless ALIAS_OK */
	size_t count;
	size_t cap;
};

/* Expands recipient (a bare mailbox "local@domain"; UTF-8 allowed) into result_r, which the
   caller frees with alias_result_free. opts may be NULL for the defaults. Returns 0 when
   result_r->status is ALIAS_OK, -1 otherwise (code, enhanced and text say why). */
int alias_expand(const char *recipient, const struct alias_opts *opts, alias_lookup_fn *lookup,
		 void *ctx, struct alias_result *result_r);

/* Frees the result's contents (NULL allowed); it is zeroed afterwards. */
void alias_result_free(struct alias_result *result);

/* Returns true when target is a local target: it starts with pipe:, maildir:, mda:,
   webhook:, discard:, error:, hold:, vacation:, mask: or bounce: (lower case). */
bool alias_target_is_local(const char *target);

/* Returns 0 when key is a valid alias key ("local@domain" or "@domain"; UTF-8 allowed),
   or -1 with *error_r set to a static reason. */
int alias_key_check(const char *key, const char **error_r);

/* Returns 0 when target is a valid alias target (a local target without control characters
   but tab, or a mailbox), or -1 with *error_r set to a static reason. */
int alias_target_check(const char *target, const char **error_r);

#endif
