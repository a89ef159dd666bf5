#ifndef POSTERN_PATTERN_H
#define POSTERN_PATTERN_H
#include <stdbool.h>
#include <stddef.h>

/* Address patterns of the rule files:
     user@example.com   that address (local part and domain compared ASCII case-insensitively,
                        and "user+ext@example.com" too, given a recipient delimiter set)
     example.com        any address in that domain
     *.example.com      any address in a subdomain of it, at any depth, not example.com itself
     /regex/ or /re/i   PCRE2 (JIT when available), unanchored, against the whole address with
                        its domain lower-cased; "i" makes it caseless
     *                  anything, the null sender included */

#define PATTERN_MATCH_LIMIT 200000 /* PCRE2 match limit: a pathological regex fails, not hangs */
#define PATTERN_CAPTURES 10        /* $0..$9 */

enum pattern_kind {
	PATTERN_ANY,
	PATTERN_ADDRESS,
	PATTERN_DOMAIN,
	PATTERN_SUBDOMAINS,
	PATTERN_REGEX,
};

struct pattern;

/* An address prepared once for matching against many patterns. */
struct pattern_subject {
	const char *address;
	size_t len;
	size_t at;          /* index of the last '@', len when there is none */
	char *folded;       /* the address with its domain lower-cased */
	char *stripped;     /* folded without the "+ext" of its local part; NULL when none */
	size_t stripped_len;
	void *match_data;   /* PCRE2 match data, made on the first regex match */
};

/* Compiles text. Returns 0 with *pattern_r set, or -1 with *error_r set to a newly allocated
   message (caller frees). */
int pattern_compile(const char *text, struct pattern **pattern_r, char **error_r);

/* Returns the kind of p. */
enum pattern_kind pattern_kind(const struct pattern *p);

/* Returns p as written. */
const char *pattern_text(const struct pattern *p);

/* Returns the lower-cased lookup key: the address (ADDRESS), the domain (DOMAIN), the parent
   domain (SUBDOMAINS, "example.com" for "*.example.com"), or "" (ANY, REGEX). */
const char *pattern_key(const struct pattern *p);

/* Prepares address for matching; delimiters (NULL or "" for none) are the characters that
   start an address extension. Free with pattern_subject_free(). */
void pattern_subject_init(struct pattern_subject *s, const char *address, const char *delimiters);

/* Frees what s holds (s itself is the caller's). */
void pattern_subject_free(struct pattern_subject *s);

/* Returns the domain of s (after the last '@', lower-cased) or NULL when it has no '@'. */
const char *pattern_subject_domain(const struct pattern_subject *s);

/* Returns true when p matches the prepared address. */
bool pattern_match_subject(const struct pattern *p, struct pattern_subject *s);

/* Returns true when p matches address, with the extension rules of pattern_subject_init(). */
bool pattern_match(const struct pattern *p, const char *address, const char *delimiters);

/* Matches p against a domain alone (lower-cased, len bytes): DOMAIN, SUBDOMAINS, ANY and
   REGEX patterns. Returns true on a match; for a regex spans_r (2 * PATTERN_CAPTURES
   offsets, or NULL) receives the capture offsets, unset groups as -1. */
bool pattern_match_domain(const struct pattern *p, const char *domain, size_t len,
			  long *spans_r);

/* Returns the number of capturing groups of a regex pattern (0 for other kinds). */
unsigned pattern_captures(const struct pattern *p);

/* Returns true when s (len bytes) is a domain name: dot-separated labels of letters, digits,
   '-', '_' or UTF-8 bytes, none empty or starting or ending with '-', at most 255 bytes. */
bool pattern_domain_valid(const char *s, size_t len);

/* Frees *p (NULL allowed) and sets it to NULL. */
void pattern_free(struct pattern **p);

#endif
