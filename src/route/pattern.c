#include "route/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "msg/address.h"
#include "util/protolimits.h"
#include "util/xalloc.h"

struct pattern {
	enum pattern_kind kind;
	char *text;
	char *key;
	size_t keylen;
	pcre2_code *code;
	pcre2_match_context *mctx;
};

static char pattern_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

static void pattern_lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = pattern_lower(src[i]);
}

static bool pattern_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pattern_lower(a[i]) != pattern_lower(b[i]))
			return false;
	return true;
}

static bool pattern_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c >= 0x80;
}

bool pattern_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > PROTO_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if (!pattern_label_char((unsigned char)s[i])) {
			return false;
		} else {
			label++;
		}
	}
	return true;
}

static void pattern_set_key(struct pattern *p, const char *key, size_t len)
{
	p->key = xmalloc(len + 1);
	pattern_lower_copy(p->key, key, len);
	p->key[len] = '\0';
	p->keylen = len;
}

static int pattern_address(struct pattern *p, char **error_r)
{
	struct address addr;
	const char *error;

	if (address_parse_mailbox(p->text, ADDRESS_ALLOW_UTF8, &addr, &error) < 0) {
		*error_r = xasprintf("bad address pattern '%.300s': %s", p->text, error);
		return -1;
	}
	p->kind = PATTERN_ADDRESS;
	pattern_set_key(p, addr.mailbox, strlen(addr.mailbox));
	return 0;
}

static int pattern_domain(struct pattern *p, const char *domain, enum pattern_kind kind,
			  char **error_r)
{
	if (!pattern_domain_valid(domain, strlen(domain))) {
		*error_r = xasprintf("bad domain pattern '%.300s'", p->text);
		return -1;
	}
	p->kind = kind;
	pattern_set_key(p, domain, strlen(domain));
	return 0;
}

static int pattern_pcre_error(int code, size_t offset, char **error_r)
{
	PCRE2_UCHAR msg[256];

	if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
		strcpy((char *)msg, "unknown error");
	*error_r = xasprintf("bad regex at offset %zu: %s", offset, (const char *)msg);
	return -1;
}

/* "/re/" or "/re/i": the last '/' ends the expression, so the expression may hold '/'. */
static int pattern_regex(struct pattern *p, char **error_r)
{
	const char *body = p->text + 1, *end = strrchr(body, '/');
	uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	int code;
	PCRE2_SIZE offset;

	if (end == NULL) {
		*error_r = xasprintf("regex '%.300s' does not end with '/'", p->text);
		return -1;
	}
	if (strcmp(end + 1, "i") == 0)
		opts |= PCRE2_CASELESS;
	else if (end[1] != '\0') {
		*error_r = xasprintf("bad regex flags '%.20s' (only 'i' is known)", end + 1);
		return -1;
	}
	if (end == body) {
		*error_r = xstrdup("empty regex");
		return -1;
	}
	p->code = pcre2_compile((PCRE2_SPTR)body, (size_t)(end - body), opts, &code, &offset, NULL);
	if (p->code == NULL)
		return pattern_pcre_error(code, offset, error_r);
	/* Without JIT the interpreter still works, only slower. */
	(void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
	p->mctx = pcre2_match_context_create(NULL);
	if (p->mctx == NULL)
		abort();
	pcre2_set_match_limit(p->mctx, PATTERN_MATCH_LIMIT);
	p->kind = PATTERN_REGEX;
	pattern_set_key(p, "", 0);
	return 0;
}

int pattern_compile(const char *text, struct pattern **pattern_r, char **error_r)
{
	struct pattern *p = xcalloc(1, sizeof(*p));
	int ret;

	p->text = xstrdup(text);
	if (text[0] == '\0') {
		*error_r = xstrdup("empty pattern");
		ret = -1;
	} else if (strcmp(text, "*") == 0) {
		p->kind = PATTERN_ANY;
		pattern_set_key(p, "", 0);
		ret = 0;
	} else if (text[0] == '/') {
		ret = pattern_regex(p, error_r);
	} else if (strchr(text, '@') != NULL) {
		ret = pattern_address(p, error_r);
	} else if (strncmp(text, "*.", 2) == 0) {
		ret = pattern_domain(p, text + 2, PATTERN_SUBDOMAINS, error_r);
	} else {
		ret = pattern_domain(p, text, PATTERN_DOMAIN, error_r);
	}
	if (ret < 0)
		pattern_free(&p);
	*pattern_r = p;
	return ret;
}

enum pattern_kind pattern_kind(const struct pattern *p)
{
	return p->kind;
}

const char *pattern_text(const struct pattern *p)
{
	return p->text;
}

const char *pattern_key(const struct pattern *p)
{
	return p->key;
}

unsigned pattern_captures(const struct pattern *p)
{
	uint32_t n = 0;

	if (p->kind == PATTERN_REGEX && pcre2_pattern_info(p->code, PCRE2_INFO_CAPTURECOUNT, &n) < 0)
		n = 0;
	return n;
}

/* The first delimiter of the local part starts the extension; a local part that starts with
   one has no base to strip to, so it is left whole. */
static size_t pattern_extension_at(const char *address, size_t at, const char *delimiters)
{
	if (delimiters == NULL || delimiters[0] == '\0')
		return at;
	for (size_t i = 1; i < at; i++)
		if (strchr(delimiters, address[i]) != NULL)
			return i;
	return at;
}

void pattern_subject_init(struct pattern_subject *s, const char *address, const char *delimiters)
{
	const char *last = strrchr(address, '@');
	size_t ext;

	memset(s, 0, sizeof(*s));
	s->address = address;
	s->len = strlen(address);
	s->at = last != NULL ? (size_t)(last - address) : s->len;
	/* One allocation for both forms: folded, its NUL, then stripped and its NUL. */
	s->folded = xmalloc(2 * s->len + 2);
	memcpy(s->folded, address, s->at);
	pattern_lower_copy(s->folded + s->at, address + s->at, s->len - s->at);
	s->folded[s->len] = '\0';
	ext = pattern_extension_at(address, s->at, delimiters);
	if (ext == s->at)
		return;
	s->stripped = s->folded + s->len + 1;
	memcpy(s->stripped, s->folded, ext);
	memcpy(s->stripped + ext, s->folded + s->at, s->len - s->at);
	s->stripped_len = ext + s->len - s->at;
	s->stripped[s->stripped_len] = '\0';
}

void pattern_subject_free(struct pattern_subject *s)
{
	pcre2_match_data_free(s->match_data);
	free(s->folded);
	memset(s, 0, sizeof(*s));
}

const char *pattern_subject_domain(const struct pattern_subject *s)
{
	return s->at < s->len ? s->folded + s->at + 1 : NULL;
}

/* Runs a regex; a match-limit or other matching error counts as no match. */
static bool pattern_exec(const struct pattern *p, const char *subject, size_t len,
			 pcre2_match_data *md)
{
	int rc = pcre2_match(p->code, (PCRE2_SPTR)subject, len, 0, 0, md, p->mctx);

	/* 0 means the match data had too few slots for every group: still a match. */
	return rc >= 0;
}

static bool pattern_domain_is(const struct pattern *p, const char *domain, size_t len)
{
	if (p->kind == PATTERN_DOMAIN)
		return len == p->keylen && pattern_ieq(domain, p->key, len);
	/* SUBDOMAINS: a proper suffix after a dot. */
	return len > p->keylen + 1 && domain[len - p->keylen - 1] == '.' &&
	       pattern_ieq(domain + len - p->keylen, p->key, p->keylen);
}

bool pattern_match_subject(const struct pattern *p, struct pattern_subject *s)
{
	switch (p->kind) {
	case PATTERN_ANY:
		return true;
	case PATTERN_ADDRESS:
		return (s->len == p->keylen && pattern_ieq(s->folded, p->key, s->len)) ||
		       (s->stripped != NULL && s->stripped_len == p->keylen &&
			pattern_ieq(s->stripped, p->key, p->keylen));
	case PATTERN_DOMAIN:
	case PATTERN_SUBDOMAINS:
		return s->at < s->len && pattern_domain_is(p, s->folded + s->at + 1, s->len - s->at - 1);
	case PATTERN_REGEX:
		if (s->match_data == NULL)
			s->match_data = pcre2_match_data_create(PATTERN_CAPTURES, NULL);
		if (s->match_data == NULL)
			abort();
		return pattern_exec(p, s->folded, s->len, s->match_data);
	}
	return false;
}

bool pattern_match(const struct pattern *p, const char *address, const char *delimiters)
{
	struct pattern_subject s;
	bool match;

	pattern_subject_init(&s, address, delimiters);
	match = pattern_match_subject(p, &s);
	pattern_subject_free(&s);
	return match;
}

static void pattern_spans(pcre2_match_data *md, long *spans_r)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t n = pcre2_get_ovector_count(md);

	for (uint32_t i = 0; i < 2 * PATTERN_CAPTURES; i++)
		spans_r[i] = i < 2 * n && ov[i] != PCRE2_UNSET ? (long)ov[i] : -1;
}

bool pattern_match_domain(const struct pattern *p, const char *domain, size_t len,
			  long *spans_r)
{
	pcre2_match_data *md;
	bool match;

	switch (p->kind) {
	case PATTERN_ANY:
		return true;
	case PATTERN_DOMAIN:
	case PATTERN_SUBDOMAINS:
		return pattern_domain_is(p, domain, len);
	case PATTERN_REGEX:
		md = pcre2_match_data_create(PATTERN_CAPTURES, NULL);
		if (md == NULL)
			abort();
		match = pattern_exec(p, domain, len, md);
		if (match && spans_r != NULL)
			pattern_spans(md, spans_r);
		pcre2_match_data_free(md);
		return match;
	case PATTERN_ADDRESS:
		break;
	}
	return false;
}

void pattern_free(struct pattern **p)
{
	if (*p == NULL)
		return;
	pcre2_match_context_free((*p)->mctx);
	pcre2_code_free((*p)->code);
	free((*p)->text);
	free((*p)->key);
	xfree(p);
}
