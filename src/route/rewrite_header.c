/* Rewriting the domains inside RFC 5322 address-list header values (3.4, with the obsolete
   forms of 4.4 tolerated: empty list elements, routes, CFWS between the parts). The value is
   cut into tokens; a small parser over them finds each addr-spec's domain, and only those
   byte spans are replaced, so everything else is kept byte for byte. The value comes from
   outside: anything that does not parse as an address list is left alone as a whole. */
#include "route/rewrite.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route/pattern.h"
#include "util/xalloc.h"

enum hdr_type {
	HDR_ATOM,    /* a run of atext (8-bit bytes included, for encoded and raw UTF-8 words) */
	HDR_QUOTED,  /* "..." */
	HDR_LITERAL, /* [...] */
	HDR_SPECIAL, /* one of < > @ , ; : . */
	HDR_CFWS,    /* white space and comments */
};

struct hdr_token {
	enum hdr_type type;
	char c; /* the special character */
	size_t start, end;
};

/* A domain span to replace and where its new text is in hdr_parser.news. */
struct hdr_edit {
	size_t start, end;
	size_t at, len;
};

struct hdr_parser {
	const struct rewrite *rw;
	enum rewrite_dir dir;
	const char *v;
	struct hdr_token *t;
	size_t n, cap;
	struct hdr_edit *edits;
	size_t nedits, edits_cap;
	struct buf news;
};

static const char *const hdr_from_names[] = { "From", "Sender", "Reply-To", "Resent-From",
					      "Resent-Sender" };
static const char *const hdr_to_names[] = { "To", "Cc", "Bcc", "Resent-To", "Resent-Cc",
					    "Resent-Bcc" };

static bool hdr_in(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Returns the direction whose rules apply to header name, or 0 for other headers. */
static unsigned hdr_direction(const char *name)
{
	if (hdr_in(name, hdr_from_names, sizeof(hdr_from_names) / sizeof(hdr_from_names[0])))
		return REWRITE_FROM;
	if (hdr_in(name, hdr_to_names, sizeof(hdr_to_names) / sizeof(hdr_to_names[0])))
		return REWRITE_TO;
	return 0;
}

/* ---- tokens ---- */

static bool hdr_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool hdr_atext(char c)
{
	return !hdr_space(c) && c != '\0' && strchr("()<>[]:;@\\,.\"", c) == NULL;
}

static void hdr_push(struct hdr_parser *p, enum hdr_type type, size_t start, size_t end)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 32;
		p->t = xrealloc(p->t, p->cap * sizeof(*p->t));
	}
	p->t[p->n++] = (struct hdr_token){ type, p->v[start], start, end };
}

/* Returns the index after the quoted string, domain literal or comment opening at i, or 0
   when it is not closed. A backslash quotes the next byte; only comments nest. */
static size_t hdr_skip_delimited(const char *v, size_t i, char close, bool nest)
{
	char open = v[i];
	size_t depth = 1;

	for (i++; v[i] != '\0'; i++) {
		if (v[i] == '\\') {
			if (v[++i] == '\0')
				return 0;
		} else if (v[i] == close) {
			if (--depth == 0)
				return i + 1;
		} else if (nest && v[i] == open) {
			depth++;
		}
	}
	return 0;
}

/* Returns the index after the white space and comments at i, or 0 for an open comment. */
static size_t hdr_skip_cfws(const char *v, size_t i)
{
	while (hdr_space(v[i]) || v[i] == '(') {
		if (v[i] != '(')
			i++;
		else if ((i = hdr_skip_delimited(v, i, ')', true)) == 0)
			return 0;
	}
	return i;
}

/* Returns the end of the token at v[i] with its type, or 0 when the value cannot be an
   address list (an open quote, comment or literal, a stray ')', ']' or '\\'). */
static size_t hdr_token_end(const char *v, size_t i, enum hdr_type *type_r)
{
	if (hdr_space(v[i]) || v[i] == '(') {
		*type_r = HDR_CFWS;
		return hdr_skip_cfws(v, i);
	}
	if (v[i] == '"' || v[i] == '[') {
		*type_r = v[i] == '"' ? HDR_QUOTED : HDR_LITERAL;
		return hdr_skip_delimited(v, i, v[i] == '"' ? '"' : ']', false);
	}
	if (strchr("<>@,;:.", v[i]) != NULL) {
		*type_r = HDR_SPECIAL;
		return i + 1;
	}
	if (!hdr_atext(v[i]))
		return 0;
	*type_r = HDR_ATOM;
	while (hdr_atext(v[i]))
		i++;
	return i;
}

static int hdr_tokenize(struct hdr_parser *p)
{
	enum hdr_type type;

	for (size_t i = 0, end; p->v[i] != '\0'; i = end) {
		if ((end = hdr_token_end(p->v, i, &type)) == 0)
			return -1;
		hdr_push(p, type, i, end);
	}
	return 0;
}

/* ---- the address-list grammar ---- */

static bool hdr_special(const struct hdr_token *t, char c)
{
	return t->type == HDR_SPECIAL && t->c == c;
}

/* A word of a phrase or local part; '.' is allowed between them (obs-phrase, obs-local-part). */
static bool hdr_word(const struct hdr_token *t)
{
	return t->type == HDR_ATOM || t->type == HDR_QUOTED || hdr_special(t, '.');
}

/* Returns the first token at or after i (before end) that is not white space or a comment. */
static size_t hdr_sig(const struct hdr_parser *p, size_t i, size_t end)
{
	while (i < end && p->t[i].type == HDR_CFWS)
		i++;
	return i;
}

static void hdr_edit_add(struct hdr_parser *p, size_t start, size_t end, const char *new)
{
	if (p->nedits == p->edits_cap) {
		p->edits_cap = p->edits_cap ? p->edits_cap * 2 : 8;
		p->edits = xrealloc(p->edits, p->edits_cap * sizeof(*p->edits));
	}
	p->edits[p->nedits++] = (struct hdr_edit){ start, end, p->news.len, strlen(new) };
	buf_puts(&p->news, new);
}

/* Rewrites the domain at v[start, end) when it is a domain a rule changes. */
static void hdr_domain(struct hdr_parser *p, size_t start, size_t end)
{
	char domain[PROTO_DOMAIN_MAX + 1], new[PROTO_DOMAIN_MAX + 1];
	size_t len = end - start;

	if (len > PROTO_DOMAIN_MAX)
		return;
	for (size_t i = 0; i < len; i++) {
		char c = p->v[start + i];
		domain[i] = c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
	}
	domain[len] = '\0';
	if (!pattern_domain_valid(domain, len) || rewrite_domain(p->rw, p->dir, domain, len, new) != 1)
		return;
	if (strlen(new) != len || memcmp(new, p->v + start, len) != 0)
		hdr_edit_add(p, start, end, new);
}

/* The domain of an addr-spec: tokens [i, b). Only a domain written as one run of bytes (no
   comment or folding inside, as obs-domain would allow) is rewritten. */
static int hdr_addr_domain(struct hdr_parser *p, size_t i, size_t b)
{
	size_t first = i, last = i, count = 0;

	if (i == b)
		return -1;
	if (p->t[i].type == HDR_LITERAL)
		return hdr_sig(p, i + 1, b) == b ? 0 : -1;
	for (; i < b && (p->t[i].type == HDR_ATOM || hdr_special(&p->t[i], '.'));
	     i = hdr_sig(p, i + 1, b)) {
		last = i;
		count++;
	}
	if (i != b || count == 0)
		return -1;
	if (last - first + 1 == count)
		hdr_domain(p, p->t[first].start, p->t[last].end);
	return 0;
}

/* local-part "@" domain over the tokens [a, b). */
static int hdr_addr_spec(struct hdr_parser *p, size_t a, size_t b)
{
	size_t i = hdr_sig(p, a, b), words = 0;

	for (; i < b && hdr_word(&p->t[i]); i = hdr_sig(p, i + 1, b))
		words++;
	if (words == 0 || i == b || !hdr_special(&p->t[i], '@'))
		return -1;
	return hdr_addr_domain(p, hdr_sig(p, i + 1, b), b);
}

/* Inside "<...>": empty (the null path), an addr-spec, or an obs-route "@a,@b:" and one. */
static int hdr_angle(struct hdr_parser *p, size_t a, size_t b)
{
	size_t i = hdr_sig(p, a, b);

	if (i == b)
		return 0;
	if (hdr_special(&p->t[i], '@')) {
		while (i < b && !hdr_special(&p->t[i], ':'))
			i++;
		if (i == b)
			return -1;
		i++;
	}
	return hdr_addr_spec(p, i, b);
}

/* Whether the tokens [a, b) are a non-empty phrase (a display name). */
static bool hdr_phrase(const struct hdr_parser *p, size_t a, size_t b, bool may_be_empty)
{
	size_t i = hdr_sig(p, a, b);

	if (i == b)
		return may_be_empty;
	for (; i < b; i = hdr_sig(p, i + 1, b))
		if (!hdr_word(&p->t[i]))
			return false;
	return true;
}

/* One list element, tokens [a, b): empty, an addr-spec, or [display-name] <angle-addr>. */
static int hdr_element(struct hdr_parser *p, size_t a, size_t b)
{
	size_t lt = a, gt;

	while (lt < b && !hdr_special(&p->t[lt], '<'))
		lt++;
	if (lt == b)
		return hdr_sig(p, a, b) == b ? 0 : hdr_addr_spec(p, a, b);
	for (gt = lt + 1; gt < b && !hdr_special(&p->t[gt], '>'); gt++)
		;
	if (gt == b || !hdr_phrase(p, a, lt, true) || hdr_sig(p, gt + 1, b) != b)
		return -1;
	return hdr_angle(p, lt + 1, gt);
}

/* Splits the tokens into elements at ',' and groups ("name: element, ...;"). */
static int hdr_list(struct hdr_parser *p)
{
	size_t elem = 0, depth = 0;
	bool group = false;

	for (size_t i = 0; i < p->n; i++) {
		char c = p->t[i].type == HDR_SPECIAL ? p->t[i].c : '\0';
		if (c == '<' && depth++ > 0)
			return -1;
		if (c == '>' && depth-- == 0)
			return -1;
		if (depth > 0 || (c != ':' && c != ';' && c != ','))
			continue;
		if (c == ':' && (group || !hdr_phrase(p, elem, i, false)))
			return -1;
		if (c == ';' && !group)
			return -1;
		if (c != ':' && hdr_element(p, elem, i) < 0)
			return -1;
		group = c == ':' || (group && c == ',');
		elem = i + 1;
	}
	if (depth > 0 || group)
		return -1;
	return hdr_element(p, elem, p->n);
}

static void hdr_output(const struct hdr_parser *p, struct buf *out)
{
	size_t pos = 0;

	for (size_t i = 0; i < p->nedits; i++) {
		const struct hdr_edit *e = &p->edits[i];
		buf_append(out, p->v + pos, e->start - pos);
		buf_append(out, p->news.data + e->at, e->len);
		pos = e->end;
	}
	buf_puts(out, p->v + pos);
}

int rewrite_header(const struct rewrite *rw, const char *name, const char *value,
		   struct buf *out)
{
	struct hdr_parser p = { .rw = rw, .dir = hdr_direction(name), .v = value };
	int changed = 0;

	if (p.dir != 0 && rewrite_count(rw) > 0 && hdr_tokenize(&p) == 0 && hdr_list(&p) == 0)
		changed = p.nedits > 0;
	if (!changed)
		p.nedits = 0;
	hdr_output(&p, out);
	free(p.t);
	free(p.edits);
	buf_free(&p.news);
	return changed;
}
