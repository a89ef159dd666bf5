#include "route/aliasfile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/address.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/xalloc.h"

/* One parse: where we are, and the entry being gathered from its line and continuation
   lines. An entry stays open after a problem (bad) so that its continuation lines are
   dropped with it instead of each being reported. */
struct aliasfile_parser {
	struct aliasfile *file;
	const char *name;
	const char *domain;
	unsigned line;
	unsigned nerrors;      /* problems found, shown or not */
	unsigned first_hidden; /* the line of the first problem not shown */
	struct aliasfile_entry entry;
	bool open;
	bool bad;
};

static void aliasfile_push_error(struct aliasfile *f, const char *text)
{
	if (f->nerrors == f->errors_cap) {
		f->errors_cap = f->errors_cap ? f->errors_cap * 2 : 8;
		f->errors = xrealloc(f->errors, f->errors_cap * sizeof(*f->errors));
	}
	f->errors[f->nerrors++] = xstrdup(text);
}

static void aliasfile_verror(struct aliasfile_parser *p, unsigned line, const char *fmt,
			     va_list ap)
{
	struct buf b = { 0 };

	if (++p->nerrors > ALIASFILE_ERRORS_MAX) {
		if (p->first_hidden == 0)
			p->first_hidden = line;
		return;
	}
	buf_printf(&b, "%s:%u: ", p->name, line);
	buf_vprintf(&b, fmt, ap);
	aliasfile_push_error(p->file, buf_str(&b));
	buf_free(&b);
}

static void aliasfile_error(struct aliasfile_parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void aliasfile_error(struct aliasfile_parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	aliasfile_verror(p, line, fmt, ap);
	va_end(ap);
}

/* Reports a problem on the current line; the open entry will be dropped. */
static void aliasfile_bad(struct aliasfile_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void aliasfile_bad(struct aliasfile_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	aliasfile_verror(p, p->line, fmt, ap);
	va_end(ap);
	p->bad = true;
}

static bool aliasfile_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void aliasfile_lower(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* ---- entries ---- */

static void aliasfile_entry_drop(struct aliasfile_parser *p)
{
	xfree(&p->entry.key);
	alias_targets_free(&p->entry.targets);
	p->open = false;
	p->bad = false;
}

static void aliasfile_entry_append(struct aliasfile *f, struct aliasfile_entry *entry)
{
	if (f->count == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->entries = xrealloc(f->entries, f->cap * sizeof(*f->entries));
	}
	f->entries[f->count++] = *entry;
	memset(entry, 0, sizeof(*entry));
}

/* Ends the open entry: kept when it is good, has targets and its name is new. */
static void aliasfile_entry_flush(struct aliasfile_parser *p)
{
	struct aliasfile_entry *e = &p->entry;
	size_t first;

	if (!p->open || p->bad) {
		aliasfile_entry_drop(p);
		return;
	}
	if (e->targets.count == 0)
		aliasfile_error(p, e->line, "%s: no targets", e->key);
	else if (strmap_add(&p->file->index, e->key, p->file->count, &first) == 0)
		aliasfile_error(p, e->line, "%s: defined again (first defined on line %u), ignored",
				e->key, p->file->entries[first].line);
	else
		aliasfile_entry_append(p->file, e);
	aliasfile_entry_drop(p);
}

/* ---- names and addresses ---- */

/* Returns the length of the quoted string at s, from its opening '"' to its closing one
   included, or 0 when it is not closed on this line. Appends its content to out (when not
   NULL) with \" and \\ decoded; other backslashes stay, as commands may need them. */
static size_t aliasfile_quoted(const char *s, struct buf *out)
{
	for (size_t i = 1; s[i] != '\0'; i++) {
		if (s[i] == '"')
			return i + 1;
		if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\'))
			i++;
		if (out != NULL)
			buf_putc(out, s[i]);
	}
	return 0;
}

/* Returns the canonical form of mailbox "local@domain", or NULL after reporting the problem
   with shown, the text as the file has it. */
static char *aliasfile_mailbox(struct aliasfile_parser *p, const char *mailbox,
			       const char *shown)
{
	struct address addr;
	const char *error;

	if (address_parse_mailbox(mailbox, ADDRESS_ALLOW_UTF8, &addr, &error) < 0) {
		aliasfile_bad(p, "%.100s: %s", shown, error);
		return NULL;
	}
	return xstrdup(addr.mailbox);
}

/* Returns the canonical mailbox for a bare local name at the default domain, or NULL after
   reporting. A name that was quoted in the file is quoted again, and the canonical form drops
   the quotes where a dot-string does ("john doe" -> "\"john doe\"@domain"); an unquoted one
   must be a dot-string, so that a missing comma ("bob alice") is an error, not a strange
   mailbox. */
static char *aliasfile_qualify(struct aliasfile_parser *p, const char *local, bool quoted)
{
	struct buf b = { 0 };

	if (p->domain == NULL || p->domain[0] == '\0') {
		aliasfile_bad(p, "%.100s: unqualified name and no default domain", local);
		return NULL;
	}
	if (quoted) {
		buf_putc(&b, '"');
		for (const char *s = local; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *s);
		}
		buf_putc(&b, '"');
	} else {
		buf_puts(&b, local);
	}
	buf_printf(&b, "@%s", p->domain);
	char *mailbox = aliasfile_mailbox(p, buf_str(&b), local);
	buf_free(&b);
	return mailbox;
}

/* ---- targets ---- */

/* Adds target (NULL after a reported problem), which is then freed. */
static void aliasfile_add(struct aliasfile_parser *p, char *target)
{
	if (target == NULL)
		return;
	alias_targets_add(&p->entry.targets, target);
	free(target);
}

static void aliasfile_pipe(struct aliasfile_parser *p, const char *command)
{
	while (aliasfile_blank(*command))
		command++;
	if (*command == '\0') {
		aliasfile_bad(p, "empty command after '|'");
		return;
	}
	aliasfile_add(p, xasprintf("pipe:%s", command));
}

/* Interprets one target, its quotes (when quoted) already taken off. */
static void aliasfile_text(struct aliasfile_parser *p, const char *t, bool quoted)
{
	if (t[0] == '|')
		aliasfile_pipe(p, t + 1);
	else if (t[0] == '/')
		aliasfile_bad(p, "%.100s: file delivery is not supported", t);
	else if (strncasecmp(t, ":include:", 9) == 0)
		aliasfile_bad(p, "%.100s: :include: is not supported, list the addresses instead",
			      t);
	else if (alias_target_is_local(t))
		aliasfile_add(p, xstrdup(t));
	else {
		if (t[0] == '\\')
			t++;
		if (t[0] == '\0')
			aliasfile_bad(p, "empty name after '\\'");
		else if (strchr(t, '@') != NULL)
			aliasfile_add(p, aliasfile_mailbox(p, t, t));
		else
			aliasfile_add(p, aliasfile_qualify(p, t, quoted));
	}
}

/* Handles one comma-separated item of a target list (NUL-terminated, may be changed). */
static void aliasfile_target(struct aliasfile_parser *p, char *item)
{
	size_t len;

	while (aliasfile_blank(*item))
		item++;
	for (len = strlen(item); len > 0 && aliasfile_blank(item[len - 1]); len--)
		item[len - 1] = '\0';
	if (len == 0)
		return;
	if (p->entry.targets.count >= ALIASFILE_TARGETS_MAX) {
		aliasfile_bad(p, "more than %d targets", ALIASFILE_TARGETS_MAX);
		return;
	}
	/* "..." whole is a quoted target; "john doe"@example.com an address. */
	if (item[0] == '"' && item[aliasfile_quoted(item, NULL)] == '\0') {
		struct buf inner = { 0 };
		aliasfile_quoted(item, &inner);
		aliasfile_text(p, buf_str(&inner), true);
		buf_free(&inner);
	} else if (item[0] == '"') {
		aliasfile_add(p, aliasfile_mailbox(p, item, item));
	} else {
		aliasfile_text(p, item, false);
	}
}

/* Splits s (the rest of a line, NUL-terminated, changed in place) at commas outside quotes. */
static void aliasfile_targets_parse(struct aliasfile_parser *p, char *s)
{
	while (!p->bad) {
		size_t n = 0;
		while (s[n] != '\0' && s[n] != ',') {
			size_t q = s[n] == '"' ? aliasfile_quoted(s + n, NULL) : 1;
			if (q == 0) {
				aliasfile_bad(p, "unbalanced quote");
				return;
			}
			n += q;
		}
		char end = s[n];
		s[n] = '\0';
		aliasfile_target(p, s);
		if (end == '\0')
			return;
		s += n + 1;
	}
}

/* ---- names ---- */

/* Returns the key of an unquoted name, or NULL after reporting. */
static char *aliasfile_key(struct aliasfile_parser *p, const char *name)
{
	struct address addr;
	const char *error;

	if (name[0] == '\0') {
		aliasfile_bad(p, "empty name");
		return NULL;
	}
	if (name[0] != '@')
		return strchr(name, '@') != NULL ? aliasfile_mailbox(p, name, name)
						 : aliasfile_qualify(p, name, false);
	/* A catch-all is a domain alone: check it as the domain of a mailbox. */
	char *mailbox = xasprintf("x%s", name);
	int rc = address_parse_mailbox(mailbox, ADDRESS_ALLOW_UTF8, &addr, &error);
	free(mailbox);
	if (rc < 0) {
		aliasfile_bad(p, "%.100s: %s", name, error);
		return NULL;
	}
	return xasprintf("@%s", addr.domain);
}

/* Parses the name at the start of line s. Returns its key, lower-cased, with *rest_r just
   after the ':', or NULL after reporting. */
static char *aliasfile_name(struct aliasfile_parser *p, char *s, char **rest_r)
{
	struct buf name = { 0 };
	char *colon, *key = NULL;
	bool quoted = s[0] == '"';

	if (quoted) {
		colon = s + aliasfile_quoted(s, &name);
		while (colon > s && aliasfile_blank(*colon))
			colon++;
	} else {
		colon = strchr(s, ':');
		char *end = colon != NULL ? colon : s + strlen(s);
		while (end > s && aliasfile_blank(end[-1]))
			end--;
		buf_append(&name, s, (size_t)(end - s));
	}
	if (quoted && colon == s)
		aliasfile_bad(p, "unbalanced quote in name");
	else if (colon == NULL || *colon != ':')
		aliasfile_bad(p, "missing ':' after the name");
	else
		key = quoted ? aliasfile_qualify(p, buf_str(&name), true)
			     : aliasfile_key(p, buf_str(&name));
	buf_free(&name);
	if (key != NULL)
		aliasfile_lower(key);
	*rest_r = colon != NULL ? colon + 1 : NULL;
	return key;
}

static void aliasfile_entry_start(struct aliasfile_parser *p, char *s)
{
	char *rest;

	p->open = true;
	p->entry.line = p->line;
	p->entry.key = aliasfile_name(p, s, &rest);
	if (p->entry.key != NULL)
		aliasfile_targets_parse(p, rest);
}

/* ---- lines ---- */

/* Reports a line the parser must not look into. Returns 0 or -1. */
static int aliasfile_line_check(struct aliasfile_parser *p, const char *s, size_t len)
{
	if (len > ALIASFILE_LINE_MAX) {
		aliasfile_bad(p, "line longer than %d bytes", ALIASFILE_LINE_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			aliasfile_bad(p, "control character 0x%02x in line", c);
			return -1;
		}
	}
	if (!address_utf8_valid(s, len)) {
		aliasfile_bad(p, "invalid UTF-8 in line");
		return -1;
	}
	return 0;
}

static void aliasfile_line(struct aliasfile_parser *p, const char *s, size_t len)
{
	size_t skip = 0;

	while (skip < len && aliasfile_blank(s[skip]))
		skip++;
	if (skip == len || s[skip] == '#')
		return;
	bool indented = skip > 0;
	if (indented && p->open && p->bad)
		return; /* the rest of an entry already reported */
	if (!indented)
		aliasfile_entry_flush(p);
	if (!indented || !p->open) {
		p->open = true;
		p->entry.line = p->line;
	}
	if (aliasfile_line_check(p, s, len) < 0)
		return;
	if (indented && p->entry.key == NULL) {
		aliasfile_bad(p, "continuation line without a name");
		return;
	}
	char *copy = xstrndup(s + skip, len - skip);
	if (indented)
		aliasfile_targets_parse(p, copy);
	else
		aliasfile_entry_start(p, copy);
	free(copy);
}

static void aliasfile_lines(struct aliasfile_parser *p, const char *text, size_t len)
{
	size_t pos = 0;

	/* Some editors start a UTF-8 file with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
		pos += n + (nl != NULL);
		if (n > 0 && start[n - 1] == '\r')
			n--;
		p->line++;
		aliasfile_line(p, start, n);
	}
	aliasfile_entry_flush(p);
}

/* ---- public ---- */

int aliasfile_parse(const char *name, const char *text, size_t len, const char *domain,
		    struct aliasfile **file_r)
{
	struct aliasfile_parser p = {
		.file = xcalloc(1, sizeof(*p.file)), .name = name, .domain = domain,
	};

	aliasfile_lines(&p, text, len);
	if (p.nerrors > ALIASFILE_ERRORS_MAX) {
		char *more = xasprintf("%s:%u: %u more problems not shown", name, p.first_hidden,
				       p.nerrors - ALIASFILE_ERRORS_MAX);
		aliasfile_push_error(p.file, more);
		free(more);
	}
	*file_r = p.file;
	return p.nerrors > 0 ? -1 : 0;
}

/* Reads the whole file at path into b. Returns 0, or -1 with *error_r. */

int aliasfile_load(const char *path, const char *domain, struct aliasfile **file_r)
{
	struct buf text = { 0 };
	const char *error;

	if (fs_read_file(path, (size_t)ALIASFILE_SIZE_MAX, &text) < 0) {
		error = errno == EFBIG ? "file too large" : strerror(errno);
		char *msg = xasprintf("%s: %s", path, error);
		*file_r = xcalloc(1, sizeof(**file_r));
		aliasfile_push_error(*file_r, msg);
		free(msg);
		buf_free(&text);
		return -1;
	}
	int rc = aliasfile_parse(path, buf_str(&text), text.len, domain, file_r);
	buf_free(&text);
	return rc;
}

int aliasfile_lookup(void *ctx, const char *key, struct alias_targets *targets_r,
		     const char **error_r)
{
	const struct aliasfile *f = ctx;
	char *lower = xstrdup(key);
	size_t i;

	aliasfile_lower(lower);
	int found = strmap_get(&f->index, lower, &i);
	free(lower);
	if (!found)
		return 0;
	for (size_t t = 0; t < f->entries[i].targets.count; t++)
		alias_targets_add(targets_r, f->entries[i].targets.items[t]);
	return 1;
}

void aliasfile_free(struct aliasfile **file)
{
	struct aliasfile *f = *file;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->count; i++) {
		free(f->entries[i].key);
		alias_targets_free(&f->entries[i].targets);
	}
	for (size_t i = 0; i < f->nerrors; i++)
		free(f->errors[i]);
	free(f->entries);
	free(f->errors);
	strmap_free(&f->index);
	xfree(file);
}
