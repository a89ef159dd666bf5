#include "route/rulefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xalloc.h"

struct rulefile_errors {
	const char *file;
	struct buf text;
	unsigned count;
};

/* One parse: the caller's settings, the errors so far and buffers reused from line to line. */
struct rulefile_parser {
	const struct vars *vars;
	rulefile_rule_cb *cb;
	void *arg;
	struct rulefile_errors errors;
	unsigned line;
	size_t nrules;
	struct buf expanded; /* the current line after substitution */
	struct buf words;    /* a copy of it with a NUL after each field */
	const char **fields;
	const char **rest;
	size_t fields_cap;
};

#define RULEFILE_STR2(x) #x
#define RULEFILE_STR(x) RULEFILE_STR2(x)

static bool rulefile_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void rulefile_vreport(struct rulefile_errors *e, unsigned line, const char *fmt,
			     va_list ap)
{
	/* A binary file given by mistake must not produce megabytes of errors. */
	if (++e->count > RULEFILE_ERRORS_MAX)
		return;
	if (e->text.len > 0)
		buf_putc(&e->text, '\n');
	buf_printf(&e->text, "%s:%u: ", e->file, line);
	buf_vprintf(&e->text, fmt, ap);
}

static void rulefile_report(struct rulefile_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void rulefile_report(struct rulefile_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rulefile_vreport(&p->errors, p->line, fmt, ap);
	va_end(ap);
}

void rulefile_error(struct rulefile_errors *errors, const struct rulefile_rule *rule,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rulefile_vreport(errors, rule->line, fmt, ap);
	va_end(ap);
}

/* Returns the length of s without its comment and surrounding blanks; *start_r skips the
   leading blanks. A '#' inside a word (a URL fragment, "a#b") is not a comment. */
static size_t rulefile_strip(const char *s, size_t n, size_t *start_r)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '#' && (i == 0 || rulefile_blank(s[i - 1]))) {
			n = i;
			break;
		}
	}
	while (n > 0 && rulefile_blank(s[n - 1]))
		n--;
	while (start < n && rulefile_blank(s[start]))
		start++;
	*start_r = start;
	return n - start;
}

/* Control characters would end up in SMTP replies, argv or log lines; none has a use here. */
static bool rulefile_has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return true;
	}
	return false;
}

static void rulefile_field_add(struct rulefile_parser *p, size_t n, const char *field,
			       const char *rest)
{
	if (n == p->fields_cap) {
		p->fields_cap = p->fields_cap ? p->fields_cap * 2 : 16;
		p->fields = xrealloc(p->fields, p->fields_cap * sizeof(*p->fields));
		p->rest = xrealloc(p->rest, p->fields_cap * sizeof(*p->rest));
	}
	p->fields[n] = field;
	p->rest[n] = rest;
}

/* Splits the expanded line into fields and hands them to the callback. */
static void rulefile_split(struct rulefile_parser *p, const char *line, size_t len)
{
	size_t n = 0;
	char *w;

	buf_reset(&p->words);
	buf_append(&p->words, line, len);
	w = p->words.data;
	for (size_t i = 0; i < len;) {
		while (i < len && rulefile_blank(w[i]))
			i++;
		if (i == len)
			break;
		rulefile_field_add(p, n++, w + i, line + i);
		while (i < len && !rulefile_blank(w[i]))
			i++;
		if (i < len)
			w[i++] = '\0'; /* the last field already ends at the buffer's NUL */
	}
	if (n == 0)
		return;
	struct rulefile_rule rule = {
		.file = p->errors.file, .line = p->line, .nfields = n,
		.fields = p->fields, .rest = p->rest,
	};
	p->cb(p->arg, &rule, &p->errors);
}

/* Returns a static reason why the raw line s (n bytes) is refused, or NULL. */
static const char *rulefile_line_check(const char *s, size_t n)
{
	if (n > RULEFILE_LINE_MAX)
		return "line too long (more than " RULEFILE_STR(RULEFILE_LINE_MAX) " bytes)";
	if (memchr(s, '\0', n) != NULL)
		return "NUL byte in line";
	return NULL;
}

static void rulefile_line(struct rulefile_parser *p, const char *s, size_t n)
{
	size_t start;
	const char *bad;
	char *error = NULL;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if ((bad = rulefile_line_check(s, n)) != NULL) {
		rulefile_report(p, "%s", bad);
		return;
	}
	n = rulefile_strip(s, n, &start);
	s += start;
	if (n == 0)
		return;
	if (rulefile_has_control(s, n)) {
		rulefile_report(p, "control character in line");
		return;
	}
	buf_reset(&p->expanded);
	if (vars_expand(p->vars, s, n, RULEFILE_LINE_MAX, &p->expanded, &error) < 0) {
		rulefile_report(p, "%s", error);
		free(error);
		return;
	}
	if (++p->nrules > RULEFILE_RULES_MAX) {
		rulefile_report(p, "too many rules (the limit is %d)", RULEFILE_RULES_MAX);
		return;
	}
	rulefile_split(p, buf_str(&p->expanded), p->expanded.len);
}

static void rulefile_lines(struct rulefile_parser *p, const char *text, size_t len)
{
	const char *end = text + len;

	/* Some editors start a UTF-8 file with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		text += 3;
	for (p->line = 1; text < end && p->nrules <= RULEFILE_RULES_MAX; p->line++) {
		const char *nl = memchr(text, '\n', (size_t)(end - text));
		size_t n = (size_t)((nl != NULL ? nl : end) - text);
		rulefile_line(p, text, n);
		text += n + (nl != NULL);
	}
}

int rulefile_parse(const char *name, const char *text, size_t len, const struct vars *vars,
		   rulefile_rule_cb *cb, void *arg, char **errors_r)
{
	struct rulefile_parser p = { .vars = vars, .cb = cb, .arg = arg, .errors.file = name };

	rulefile_lines(&p, text, len);
	buf_free(&p.expanded);
	buf_free(&p.words);
	free(p.fields);
	free(p.rest);
	*errors_r = NULL;
	if (p.errors.count == 0)
		return 0;
	if (p.errors.count > RULEFILE_ERRORS_MAX)
		buf_printf(&p.errors.text, "\n%s: %u more errors not shown", name,
			   p.errors.count - RULEFILE_ERRORS_MAX);
	*errors_r = xstrdup(buf_str(&p.errors.text));
	buf_free(&p.errors.text);
	return -1;
}


int rulefile_load(const char *path, const struct vars *vars, rulefile_rule_cb *cb, void *arg,
		  char **errors_r)
{
	struct buf text = { 0 };
	int ret;

	if (fs_read_file(path, RULEFILE_SIZE_MAX, &text) < 0) {
		*errors_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		ret = -1;
	} else {
		ret = rulefile_parse(path, buf_str(&text), text.len, vars, cb, arg, errors_r);
	}
	buf_free(&text);
	return ret;
}
